import { useState, type FormEvent } from 'react';
import { Link as RouterLink, Navigate, useLocation, useNavigate } from 'react-router-dom';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Link from '@mui/material/Link';
import Paper from '@mui/material/Paper';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import { ApiError, errorMessage } from '../api';
import { useAuth } from '../auth/AuthContext';
import { PageHeading } from '../components/PageHeading';

export function AuthCard({ children }: { children: React.ReactNode }) {
  return (
    <Box component="main" id="main" sx={{ display: 'flex', justifyContent: 'center', p: 2, mt: { xs: 2, sm: 8 } }}>
      <Paper sx={{ p: { xs: 2, sm: 4 }, width: '100%', maxWidth: 420 }}>{children}</Paper>
    </Box>
  );
}

export default function LoginPage() {
  const { user, login, endedReason } = useAuth();
  const location = useLocation();
  const navigate = useNavigate();
  const state = location.state as { from?: string; signedOut?: boolean; registered?: boolean } | null;
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (user) return <Navigate to={state?.from ?? '/'} replace />;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
      navigate(state?.from ?? '/', { replace: true });
    } catch (reason) {
      if (reason instanceof ApiError && reason.status === 429) {
        setError(`Too many attempts. ${reason.message}`);
      } else if (reason instanceof ApiError && reason.status === 401) {
        setError('Wrong username or password.');
      } else setError(errorMessage(reason));
      setBusy(false);
    }
  };

  return (
    <AuthCard>
      <PageHeading title="Sign in" />
      {endedReason && !state?.signedOut && (
        <Alert severity="warning" role="alert" sx={{ mb: 2 }}>
          {endedReason}
        </Alert>
      )}
      {state?.signedOut && (
        <Alert severity="info" sx={{ mb: 2 }}>
          You have signed out.
        </Alert>
      )}
      {state?.registered && (
        <Alert severity="success" sx={{ mb: 2 }}>
          Your account is ready. Sign in to continue.
        </Alert>
      )}
      {error && (
        <Alert severity="error" role="alert" sx={{ mb: 2 }}>
          {error}
        </Alert>
      )}
      <Box component="form" onSubmit={submit} noValidate>
        <TextField
          label="Username or e-mail"
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          autoComplete="username"
          required
          fullWidth
          margin="normal"
          autoFocus
        />
        <TextField
          label="Password"
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="current-password"
          required
          fullWidth
          margin="normal"
        />
        <Button type="submit" variant="contained" fullWidth sx={{ mt: 2 }} disabled={busy || !username || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </Button>
      </Box>
      <Typography variant="body2" sx={{ mt: 2 }}>
        No account?{' '}
        <Link component={RouterLink} to="/register">
          Register
        </Link>
      </Typography>
    </AuthCard>
  );
}
