import { useState, type FormEvent } from 'react';
import { login } from '../api';
import { Button, FormError, TextField } from '../components/ui';
import { useAction } from '../hooks';
import { validateCredentials, type Errors } from '../validate';

export function LoginForm({ onLogin }: { onLogin: (email: string, password: string) => Promise<unknown> }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found = validateCredentials({ email, password }, false);
    setErrors(found);
    if (Object.keys(found).length === 0) await action.run(() => onLogin(email.trim(), password));
  };
  return (
    <form className="auth-card card" onSubmit={submit} noValidate aria-labelledby="login-title">
      <h1 id="login-title">Log in to Routerly</h1>
      <TextField label="Email" type="email" autoComplete="username" value={email} onChange={(event) => setEmail(event.target.value)} error={errors.email} autoFocus />
      <TextField label="Password" type="password" autoComplete="current-password" value={password} onChange={(event) => setPassword(event.target.value)} error={errors.password} />
      <FormError error={action.error} />
      <Button type="submit" variant="primary" busy={action.pending}>
        Log in
      </Button>
    </form>
  );
}

export function LoginPage() {
  return (
    <div className="auth-page">
      <LoginForm onLogin={login} />
    </div>
  );
}
