import { describe, expect, test } from 'vitest';
import { validateCredentials, validateLimit, validateModel, validateSmtp, validateWebhook, type ModelFormValues } from './validate';

const model: ModelFormValues = { id: 'gpt-4o', provider: 'openai', endpoint: '', endpointRequired: false, inputPrice: '2.5', outputPrice: '10', cachedPrice: '', contextWindow: '128000' };

describe('form checks', () => {
  test('a valid model passes', () => expect(validateModel(model)).toEqual({}));
  test.each([
    [{ id: '' }, 'id'],
    [{ id: 'auto' }, 'id'],
    [{ id: 'has space' }, 'id'],
    [{ endpoint: 'ftp://x' }, 'endpoint'],
    [{ endpointRequired: true }, 'endpoint'],
    [{ inputPrice: '-1' }, 'inputPrice'],
    [{ outputPrice: 'ten' }, 'outputPrice'],
    [{ contextWindow: '1.5' }, 'contextWindow'],
  ])('model %o is refused on %s', (patch, field) => {
    expect(Object.keys(validateModel({ ...model, ...patch }))).toEqual([field]);
  });
  test('a duplicate model id is refused', () => expect(validateModel(model, ['gpt-4o']).id).toMatch(/exists already/));
  test('credentials', () => {
    expect(validateCredentials({ email: 'a@b.c', password: 'longenough', confirm: 'longenough' }, true)).toEqual({});
    expect(Object.keys(validateCredentials({ email: 'nope', password: 'short', confirm: 'other' }, true)).sort()).toEqual(['confirm', 'email', 'password']);
    expect(validateCredentials({ email: 'a@b.c', password: 'x' }, false)).toEqual({});
  });
  test('limits', () => {
    expect(validateLimit({ metric: 'cost', windowKind: 'period', period: 'daily', rolling: '', value: '2.5' })).toEqual({});
    expect(validateLimit({ metric: 'calls', windowKind: 'period', period: 'daily', rolling: '', value: '2.5' }).value).toMatch(/whole/);
    expect(validateLimit({ metric: 'cost', windowKind: 'rolling', period: '', rolling: '15 minutes', value: '1' }).rolling).toMatch(/15m/);
    expect(validateLimit({ metric: 'cost', windowKind: 'rolling', period: '', rolling: '15m', value: '' }).value).toBeDefined();
  });
  test('channels', () => {
    expect(validateWebhook({ url: 'https://hooks.example.com/x' })).toEqual({});
    expect(validateWebhook({ url: 'hooks.example.com' }).url).toBeDefined();
    expect(validateSmtp({ host: 'smtp.example.com', port: '587', from: 'r@example.com', to: 'a@example.com, b@example.com' })).toEqual({});
    expect(Object.keys(validateSmtp({ host: '', port: '70000', from: 'x', to: 'a@example.com, nope' })).sort()).toEqual(['from', 'host', 'port', 'to']);
  });
});
