import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { describe, expect, test, vi } from 'vitest';
import { LimitForm } from './components/budgets';
import { ConfirmButton, SecretOnce } from './components/ui';
import { LoginForm } from './pages/Login';
import { ModelForm } from './pages/Models';
import { PolicyList, policyWeights, reorder, withAllPolicies } from './pages/project/Routing';
import { ChannelForm } from './pages/Settings';
import { ProjectForm } from './pages/Projects';
import type { Catalogue, Policy } from './types';

const catalogue: Catalogue = {
  prices_as_of: '2025-10',
  note: '',
  providers: [
    { id: 'openai', name: 'OpenAI', format: 'openai_chat', default_endpoint: 'https://api.openai.com/v1', models: [{ id: 'gpt-4o-mini', pricing: { input: 0.15, output: 0.6, cached_input: 0.075 }, context_window: 128000, capabilities: { vision: true, tools: true } }] },
    { id: 'custom', name: 'Custom', format: 'openai_chat', default_endpoint: null, models: [] },
  ],
};

describe('the model form', () => {
  test('picking a catalogue model fills in its id, prices and capabilities, and sends them', async () => {
    const onSubmit = vi.fn().mockResolvedValue({});
    render(<ModelForm catalogue={catalogue} existingIds={[]} onSubmit={onSubmit} />);
    fireEvent.change(screen.getByLabelText('Model from the catalogue'), { target: { value: 'gpt-4o-mini' } });
    expect((screen.getByLabelText('Input price (USD / M tokens)') as HTMLInputElement).value).toBe('0.15');
    fireEvent.change(screen.getByLabelText('API key'), { target: { value: 'sk-secret' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add model' }));
    await waitFor(() => expect(onSubmit).toHaveBeenCalledTimes(1));
    expect(onSubmit.mock.calls[0][0]).toEqual({
      id: 'gpt-4o-mini',
      provider: 'openai',
      api_key: 'sk-secret',
      upstream_model: 'gpt-4o-mini',
      pricing: { input: 0.15, output: 0.6, cached_input: 0.075 },
      context_window: 128000,
      capabilities: { vision: true, tools: true },
    });
  });
  test('it refuses to send an invalid model and says why', () => {
    const onSubmit = vi.fn();
    render(<ModelForm catalogue={catalogue} existingIds={[]} onSubmit={onSubmit} />);
    fireEvent.change(screen.getByLabelText('Provider'), { target: { value: 'custom' } });
    fireEvent.change(screen.getByLabelText('Input price (USD / M tokens)'), { target: { value: '-3' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add model' }));
    expect(onSubmit).not.toHaveBeenCalled();
    expect(screen.getByText(/Give the model an id/)).toBeTruthy();
    expect(screen.getByText(/has no default endpoint/)).toBeTruthy();
    expect(screen.getByText(/Enter a price of 0 or more/)).toBeTruthy();
  });
  test('a server error naming a field shows beside that field', async () => {
    const { ApiError } = await import('./api');
    const onSubmit = vi.fn().mockRejectedValue(new ApiError(409, 'conflict', 'a model `x` already exists', 'id'));
    render(<ModelForm catalogue={catalogue} existingIds={[]} onSubmit={onSubmit} />);
    fireEvent.change(screen.getByLabelText('Id in Routerly'), { target: { value: 'x' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add model' }));
    expect(await screen.findByText('a model `x` already exists')).toBeTruthy();
    expect(screen.getByLabelText('Id in Routerly').getAttribute('aria-invalid')).toBe('true');
  });
});

describe('small forms', () => {
  test('login checks the email before sending and shows the server error in words', async () => {
    const { ApiError } = await import('./api');
    const onLogin = vi.fn().mockRejectedValue(new ApiError(401, 'unauthenticated', 'wrong email or password'));
    render(<LoginForm onLogin={onLogin} />);
    fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect(onLogin).not.toHaveBeenCalled();
    fireEvent.change(screen.getByLabelText('Email'), { target: { value: 'a@b.c' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'pw' } });
    fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect(await screen.findByText(/Wrong email or password/)).toBeTruthy();
    expect(onLogin).toHaveBeenCalledWith('a@b.c', 'pw');
  });
  test('a project needs a name', async () => {
    const onSubmit = vi.fn().mockResolvedValue({});
    render(<ProjectForm onSubmit={onSubmit} />);
    fireEvent.click(screen.getByRole('button', { name: 'Create project' }));
    expect(screen.getByText('Give the project a name.')).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Project name'), { target: { value: '  Support bot ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create project' }));
    await waitFor(() => expect(onSubmit).toHaveBeenCalledWith('Support bot'));
  });
  test('a budget is sent as a limit on its scope', async () => {
    const submit = vi.fn().mockResolvedValue({});
    const onSaved = vi.fn();
    render(<LimitForm scope="project:p1" onSaved={onSaved} submit={submit} />);
    fireEvent.change(screen.getByLabelText('Limit (USD)'), { target: { value: '25' } });
    fireEvent.click(screen.getByRole('button', { name: 'Set budget' }));
    await waitFor(() => expect(onSaved).toHaveBeenCalled());
    expect(submit).toHaveBeenCalledWith({ scope: 'project:p1', metric: 'cost', value: 25, period: 'monthly' });
  });
  test('a webhook channel needs a URL; an SMTP one its server and addresses', async () => {
    const onSubmit = vi.fn().mockResolvedValue({});
    render(<ChannelForm onSubmit={onSubmit} />);
    fireEvent.click(screen.getByRole('button', { name: 'Add channel' }));
    expect(screen.getByText('Enter an http:// or https:// URL.')).toBeTruthy();
    fireEvent.change(screen.getByLabelText('URL'), { target: { value: 'https://hooks.example.com/r' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add channel' }));
    await waitFor(() => expect(onSubmit).toHaveBeenCalledWith({ type: 'webhook', url: 'https://hooks.example.com/r' }));
  });
});

describe('dialogs and secrets', () => {
  test('deleting asks first, and Cancel does nothing', async () => {
    const onConfirm = vi.fn();
    render(<ConfirmButton label="Remove" title="Remove it?" message="Really." onConfirm={onConfirm} />);
    fireEvent.click(screen.getByRole('button', { name: 'Remove' }));
    expect(screen.getByRole('alertdialog', { name: 'Remove it?' })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(onConfirm).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole('button', { name: 'Remove' }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(onConfirm).toHaveBeenCalledTimes(1));
    await waitFor(() => expect(screen.queryByRole('alertdialog')).toBeNull());
  });
  test('Escape closes the dialog', () => {
    render(<ConfirmButton label="Remove" title="Remove it?" message="Really." onConfirm={vi.fn()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Remove' }));
    fireEvent.keyDown(screen.getByRole('alertdialog'), { key: 'Escape' });
    expect(screen.queryByRole('alertdialog')).toBeNull();
  });
  test('a secret is shown once and gone when dismissed', () => {
    const onDone = vi.fn();
    render(<SecretOnce secret="sk-lr-abc" what="token" onDone={onDone} />);
    expect(screen.getByTestId('secret-value').textContent).toBe('sk-lr-abc');
    fireEvent.click(screen.getByRole('button', { name: 'I have copied it' }));
    expect(onDone).toHaveBeenCalled();
  });
});

describe('routing policies', () => {
  test('reorder moves one item', () => {
    expect(reorder(['a', 'b', 'c'], 2, 0)).toEqual(['c', 'a', 'b']);
    expect(reorder(['a', 'b', 'c'], 0, 5)).toEqual(['a', 'b', 'c']);
  });
  test('the first enabled policy weighs most (n − i)', () => {
    const weights = policyWeights([
      { type: 'health', enabled: true, config: {} },
      { type: 'llm', enabled: false, config: {} },
      { type: 'cheapest', enabled: true, config: {} },
    ]);
    expect(Object.fromEntries(weights)).toEqual({ health: 2, cheapest: 1 });
  });
  test('unknown settings get PRODUCT.md defaults and missing policies are listed disabled', () => {
    const all = withAllPolicies([{ type: 'health', enabled: true, config: { windowMinutes: 10 } }]);
    expect(all[0]).toEqual({ type: 'health', enabled: true, config: { windowMinutes: 10, halfLifeMinutes: 5, pseudoCounts: 2, circuitBreaker: 0.9 } });
    expect(all).toHaveLength(10);
    expect(all.slice(1).every((policy) => !policy.enabled)).toBe(true);
  });
  test('the keyboard moves a policy with the arrow keys', () => {
    const policies: Policy[] = [
      { type: 'cheapest', enabled: true, config: {} },
      { type: 'health', enabled: true, config: {} },
    ];
    const onChange = vi.fn();
    render(<PolicyList policies={policies} models={[]} onChange={onChange} />);
    fireEvent.keyDown(screen.getByRole('button', { name: /Move Health/ }), { key: 'ArrowUp' });
    expect(onChange.mock.calls[0][0].map((policy: Policy) => policy.type)).toEqual(['health', 'cheapest']);
  });
  test('a policy can be dragged onto another', () => {
    const policies: Policy[] = [
      { type: 'cheapest', enabled: true, config: {} },
      { type: 'health', enabled: true, config: {} },
      { type: 'performance', enabled: false, config: {} },
    ];
    const onChange = vi.fn();
    render(<PolicyList policies={policies} models={[]} onChange={onChange} />);
    const data = new Map<string, string>();
    const dataTransfer = { setData: (key: string, value: string) => data.set(key, value), getData: (key: string) => data.get(key) ?? '', effectAllowed: '', dropEffect: '' };
    fireEvent.dragStart(screen.getByTestId('policy-performance'), { dataTransfer });
    fireEvent.dragOver(screen.getByTestId('policy-cheapest'), { dataTransfer });
    fireEvent.drop(screen.getByTestId('policy-cheapest'), { dataTransfer });
    expect(onChange.mock.calls[0][0].map((policy: Policy) => policy.type)).toEqual(['performance', 'cheapest', 'health']);
  });
});

describe('model health', () => {
  test("an open circuit reads in the danger colour with routing's recent failures and the day's percentiles", async () => {
    const { ModelHealth } = await import('./pages/Models');
    const totals = { calls: 40, errors: 4, provider_calls: 20, provider_errors: 2, p50_latency_ms: 120, p95_latency_ms: 1500 } as unknown as import('./types').Totals;
    render(<ModelHealth health={{ model_id: 'm', circuit: 'open', circuit_since: '2026-12-04T10:11:12Z', calls: 5, failures: 5, score: 0.29, mean_latency_ms: null }} totals={totals} />);
    const cell = screen.getByTestId('model-health');
    expect(cell.getAttribute('data-circuit')).toBe('open');
    expect(cell.querySelector('.badge-bad')?.textContent).toBe('circuit open');
    expect(cell.textContent).toContain(':12');
    expect(screen.getByTestId('model-routing').textContent).toContain('5 of 5 calls failed · health 0.29');
    expect(cell.textContent).toContain('p95 1.50 s');
    expect(cell.textContent).toContain('errors 10 % of 20');
  });

  test('a model routing has not called is closed and says there were no calls', async () => {
    const { ModelHealth } = await import('./pages/Models');
    render(<ModelHealth health={{ model_id: 'm', circuit: 'closed', circuit_since: null, calls: 0, failures: 0, score: 1, mean_latency_ms: null }} />);
    expect(screen.getByTestId('model-health').querySelector('.badge-good')?.textContent).toBe('circuit closed');
    expect(screen.queryByTestId('model-routing')).toBeNull();
    expect(screen.getByTestId('model-health').textContent).toContain('no call served in 24 h');
  });
});
