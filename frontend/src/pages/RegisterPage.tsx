import { useState, type FormEvent } from 'react';
import { Link as RouterLink, useNavigate } from 'react-router-dom';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Link from '@mui/material/Link';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import { ApiError, auth, errorMessage } from '../api';
import { PageHeading } from '../components/PageHeading';
import { AuthCard } from './LoginPage';

export default function RegisterPage() {
  const navigate = useNavigate();
  const [form, setForm] = useState({ username: '', email: '', first_name: '', last_name: '', password: '', confirm: '' });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const mismatch = form.confirm !== '' && form.confirm !== form.password;
  const set = (key: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) =>
    setForm({ ...form, [key]: e.target.value });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (mismatch) return;
    setBusy(true);
    setError(null);
    try {
      await auth.register({
        username: form.username.trim(),
        email: form.email.trim(),
        password: form.password,
        first_name: form.first_name.trim() || undefined,
        last_name: form.last_name.trim() || undefined,
      });
      navigate('/login', { state: { registered: true } });
    } catch (reason) {
      setError(
        reason instanceof ApiError && reason.status === 403
          ? 'Registration is switched off on this platform. Ask an administrator for an account.'
          : errorMessage(reason),
      );
      setBusy(false);
    }
  };

  return (
    <AuthCard>
      <PageHeading title="Register" />
      {error && (
        <Alert severity="error" role="alert" sx={{ mb: 2 }}>
          {error}
        </Alert>
      )}
      <Box component="form" onSubmit={submit} noValidate>
        <TextField label="Username" value={form.username} onChange={set('username')} autoComplete="username" required fullWidth margin="normal" />
        <TextField label="E-mail" type="email" value={form.email} onChange={set('email')} autoComplete="email" required fullWidth margin="normal" />
        <TextField label="First name" value={form.first_name} onChange={set('first_name')} autoComplete="given-name" fullWidth margin="normal" />
        <TextField label="Last name" value={form.last_name} onChange={set('last_name')} autoComplete="family-name" fullWidth margin="normal" />
        <TextField
          label="Password"
          type="password"
          value={form.password}
          onChange={set('password')}
          autoComplete="new-password"
          helperText="At least 12 characters."
          required
          fullWidth
          margin="normal"
        />
        <TextField
          label="Repeat password"
          type="password"
          value={form.confirm}
          onChange={set('confirm')}
          autoComplete="new-password"
          error={mismatch}
          helperText={mismatch ? 'The passwords differ.' : ' '}
          required
          fullWidth
          margin="normal"
        />
        <Button
          type="submit"
          variant="contained"
          fullWidth
          sx={{ mt: 2 }}
          disabled={busy || mismatch || !form.username || !form.email || !form.password}
        >
          {busy ? 'Creating account…' : 'Create account'}
        </Button>
      </Box>
      <Typography variant="body2" sx={{ mt: 2 }}>
        Already registered?{' '}
        <Link component={RouterLink} to="/login">
          Sign in
        </Link>
      </Typography>
    </AuthCard>
  );
}
