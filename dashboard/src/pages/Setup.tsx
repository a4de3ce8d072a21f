import { useState, type FormEvent } from 'react';
import { createFirstAdmin } from '../api';
import { Button, FormError, TextField, fieldError } from '../components/ui';
import { useAction } from '../hooks';
import { validateCredentials, type Errors } from '../validate';

/** First start: create the first admin (with the setup token when not on this machine). */
export function SetupPage({ tokenRequired }: { tokenRequired: boolean }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [setupToken, setSetupToken] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found = validateCredentials({ email, password, confirm }, true);
    if (tokenRequired && !setupToken.trim()) found.setup_token = 'Paste the setup token that `routerly serve` printed.';
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    await action.run(() => createFirstAdmin(email.trim(), password, tokenRequired ? setupToken.trim() : undefined));
  };

  return (
    <div className="auth-page">
      <form className="auth-card card" onSubmit={submit} noValidate aria-labelledby="setup-title">
        <h1 id="setup-title">Welcome to Routerly</h1>
        <p className="muted">Create the first administrator. You will use this email and password to log in.</p>
        <TextField label="Email" type="email" autoComplete="username" value={email} onChange={(event) => setEmail(event.target.value)} error={fieldError(errors, action.error, 'email')} autoFocus />
        <TextField label="Password" type="password" autoComplete="new-password" value={password} onChange={(event) => setPassword(event.target.value)} error={fieldError(errors, action.error, 'password')} hint="At least 8 characters." />
        <TextField label="Repeat the password" type="password" autoComplete="new-password" value={confirm} onChange={(event) => setConfirm(event.target.value)} error={errors.confirm} />
        {tokenRequired ? (
          <TextField
            label="Setup token"
            value={setupToken}
            onChange={(event) => setSetupToken(event.target.value)}
            error={fieldError(errors, action.error, 'setup_token')}
            hint="You are not on the machine Routerly runs on, so it asks for the one-time token printed at its first start (also in config/setup-token under ROUTERLY_HOME)."
            autoComplete="off"
          />
        ) : null}
        <FormError error={action.error} fields={['email', 'password']} />
        <Button type="submit" variant="primary" busy={action.pending}>
          Create admin and continue
        </Button>
      </form>
    </div>
  );
}
