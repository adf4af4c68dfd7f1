import { useState, type FormEvent, type ReactNode } from 'react';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import IconButton from '@mui/material/IconButton';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import MenuItem from '@mui/material/MenuItem';
import TextField from '@mui/material/TextField';
import Tooltip from '@mui/material/Tooltip';
import Typography from '@mui/material/Typography';
import {
  auth,
  credentials,
  itemsOf,
  notifications,
  services,
  tokens,
  type ApiTokenCreated,
  type ServiceCredential,
} from '../api';
import { useAuth } from '../auth/AuthContext';
import { AsyncView } from '../components/AsyncView';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { useFeedback } from '../components/Feedback';
import { CopyIcon } from '../components/icons';
import { PageHeading } from '../components/PageHeading';
import { formatDateTime } from '../format';
import { useAsync } from '../hooks/useAsync';

function Section({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <Card component="section" aria-labelledby={id} sx={{ mb: 2 }}>
      <CardContent>
        <Typography variant="h6" component="h2" id={id} gutterBottom>
          {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

function Profile() {
  const { user, setUser } = useAuth();
  const feedback = useFeedback();
  const [email, setEmail] = useState(user?.email ?? '');
  const [firstName, setFirstName] = useState(user?.first_name ?? '');
  const [lastName, setLastName] = useState(user?.last_name ?? '');
  const save = (event: FormEvent) => {
    event.preventDefault();
    auth.updateProfile({ email, first_name: firstName, last_name: lastName }).then((updated) => {
      setUser(updated);
      feedback.success('Profile saved.');
    }, feedback.error);
  };
  return (
    <Section id="profile-heading" title="Profile">
      <Box component="form" onSubmit={save} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2 }}>
        <TextField label="Username" value={user?.username ?? ''} disabled />
        <TextField label="E-mail" type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="email" />
        <TextField label="First name" value={firstName} onChange={(e) => setFirstName(e.target.value)} autoComplete="given-name" />
        <TextField label="Last name" value={lastName} onChange={(e) => setLastName(e.target.value)} autoComplete="family-name" />
        <Button type="submit" variant="contained">
          Save profile
        </Button>
      </Box>
    </Section>
  );
}

function Password() {
  const feedback = useFeedback();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [error, setError] = useState<string | null>(null);
  const save = (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    auth.changePassword(current, next).then(
      () => {
        setCurrent('');
        setNext('');
        feedback.success('Password changed.');
      },
      (reason: unknown) => setError(reason instanceof Error ? reason.message : String(reason)),
    );
  };
  return (
    <Section id="password-heading" title="Password">
      {error && (
        <Alert severity="error" role="alert" sx={{ mb: 2 }}>
          {error}
        </Alert>
      )}
      <Box component="form" onSubmit={save} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2 }}>
        <TextField label="Current password" type="password" value={current} onChange={(e) => setCurrent(e.target.value)} autoComplete="current-password" />
        <TextField label="New password" type="password" value={next} onChange={(e) => setNext(e.target.value)} autoComplete="new-password" />
        <Button type="submit" variant="contained" disabled={!current || !next}>
          Change password
        </Button>
      </Box>
    </Section>
  );
}

function ApiTokens() {
  const feedback = useFeedback();
  const state = useAsync(() => tokens.list(), []);
  const [name, setName] = useState('');
  const [days, setDays] = useState('90');
  const [created, setCreated] = useState<ApiTokenCreated | null>(null);
  const [revoking, setRevoking] = useState<number | null>(null);

  const create = (event: FormEvent) => {
    event.preventDefault();
    tokens.create(name.trim(), days ? Number(days) : null).then((token) => {
      setCreated(token);
      setName('');
      state.reload(true);
    }, feedback.error);
  };
  const copy = () => {
    if (!created) return;
    navigator.clipboard?.writeText(created.token).then(
      () => feedback.success('Token copied.'),
      () => feedback.info('Select the token and copy it by hand.'),
    );
  };

  return (
    <Section id="tokens-heading" title="Personal API tokens">
      <Typography variant="body2" color="text.secondary" gutterBottom>
        For scripts: send <code>Authorization: Bearer &lt;token&gt;</code> to the API.
      </Typography>
      {created && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setCreated(null)}>
          <Typography>Copy this token now: it will not be shown again.</Typography>
          <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, mt: 1 }}>
            <Box component="code" data-testid="new-token" sx={{ wordBreak: 'break-all', userSelect: 'all' }}>
              {created.token}
            </Box>
            <Tooltip title="Copy token">
              <IconButton onClick={copy} aria-label="Copy token">
                <CopyIcon fontSize="small" />
              </IconButton>
            </Tooltip>
          </Box>
        </Alert>
      )}
      <Box component="form" onSubmit={create} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mb: 2 }}>
        <TextField label="Token name" value={name} onChange={(e) => setName(e.target.value)} size="small" required />
        <TextField select label="Expires" value={days} onChange={(e) => setDays(e.target.value)} size="small" sx={{ minWidth: 140 }}>
          <MenuItem value="30">in 30 days</MenuItem>
          <MenuItem value="90">in 90 days</MenuItem>
          <MenuItem value="365">in a year</MenuItem>
          <MenuItem value="">never</MenuItem>
        </TextField>
        <Button type="submit" variant="contained" disabled={!name.trim()}>
          Create token
        </Button>
      </Box>
      <AsyncView state={state} isEmpty={(d) => d.items.length === 0} empty="You have no API tokens." loadingLabel="Loading tokens">
        {(data) => (
          <List dense aria-label="API tokens">
            {data.items.map((t) => (
              <ListItem
                key={t.id}
                divider
                secondaryAction={
                  <Button color="error" size="small" onClick={() => setRevoking(t.id)} aria-label={`Revoke ${t.name}`}>
                    Revoke
                  </Button>
                }
              >
                <ListItemText
                  primary={`${t.name}${t.token_prefix ? ` (${t.token_prefix}…)` : ''}`}
                  secondary={`created ${formatDateTime(t.created_at)} · expires ${t.expires_at ? formatDateTime(t.expires_at) : 'never'} · last used ${t.last_used_at ? formatDateTime(t.last_used_at) : 'never'}`}
                  sx={{ pr: 10 }}
                />
              </ListItem>
            ))}
          </List>
        )}
      </AsyncView>
      <ConfirmDialog
        open={revoking !== null}
        title="Revoke this token?"
        message="Scripts using it stop working at once."
        confirmLabel="Revoke"
        onClose={() => setRevoking(null)}
        onConfirm={() => {
          const id = revoking!;
          tokens.revoke(id).then(() => {
            feedback.success('Token revoked.');
            state.reload(true);
          }, feedback.error);
        }}
      />
    </Section>
  );
}

function soonExpiring(credential: ServiceCredential): boolean {
  if (credential.expired || credential.expires_soon || credential.warning) return true;
  if (!credential.expires_at) return false;
  return new Date(credential.expires_at).getTime() - Date.now() < 7 * 24 * 3600 * 1000;
}

function ServiceCredentials() {
  const feedback = useFeedback();
  const serviceList = useAsync(() => services.list(), []);
  const state = useAsync(async () => itemsOf(await credentials.list()), []);
  const [serviceId, setServiceId] = useState('');
  const [token, setToken] = useState('');
  const [expires, setExpires] = useState('');
  const nameOf = (id: number) => serviceList.data?.items.find((s) => s.id === id)?.name ?? `Service ${id}`;

  const save = (event: FormEvent) => {
    event.preventDefault();
    credentials.set(Number(serviceId), token, expires ? new Date(expires).toISOString() : null).then(() => {
      feedback.success('Credential saved.');
      setToken('');
      setExpires('');
      state.reload(true);
    }, feedback.error);
  };

  return (
    <Section id="credentials-heading" title="My credentials for external services">
      <Typography variant="body2" color="text.secondary" gutterBottom>
        Your own API token for a service (for example your Michigan token) is used for your jobs there. It is stored
        encrypted and never shown again.
      </Typography>
      <AsyncView state={state} isEmpty={(d) => d.length === 0} empty="No credentials stored." loadingLabel="Loading credentials">
        {(list) => (
          <List dense aria-label="Stored credentials">
            {list.map((c) => (
              <ListItem
                key={c.service_id}
                divider
                secondaryAction={
                  <Button
                    color="error"
                    size="small"
                    aria-label={`Remove credential for ${nameOf(c.service_id)}`}
                    onClick={() =>
                      credentials.remove(c.service_id).then(() => {
                        feedback.success('Credential removed.');
                        state.reload(true);
                      }, feedback.error)
                    }
                  >
                    Remove
                  </Button>
                }
              >
                <ListItemText
                  primary={nameOf(c.service_id)}
                  secondary={
                    <>
                      {c.expires_at ? `expires ${formatDateTime(c.expires_at)}` : 'no expiry date'}
                      {soonExpiring(c) && (
                        <Box component="span" sx={{ color: 'warning.dark', display: 'block' }}>
                          {c.warning ?? (c.expired ? 'Expired: replace it.' : 'Expires within 7 days: replace it soon.')}
                        </Box>
                      )}
                    </>
                  }
                  sx={{ pr: 10 }}
                />
              </ListItem>
            ))}
          </List>
        )}
      </AsyncView>
      <Box component="form" onSubmit={save} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mt: 2 }}>
        <TextField select label="Service" size="small" value={serviceId} onChange={(e) => setServiceId(e.target.value)} sx={{ minWidth: 200 }}>
          {(serviceList.data?.items ?? []).map((s) => (
            <MenuItem key={s.id} value={String(s.id)}>
              {s.name}
            </MenuItem>
          ))}
        </TextField>
        <TextField label="API token" type="password" size="small" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" />
        <TextField
          label="Expires on"
          type="date"
          size="small"
          value={expires}
          onChange={(e) => setExpires(e.target.value)}
          slotProps={{ inputLabel: { shrink: true } }}
        />
        <Button type="submit" variant="contained" disabled={!serviceId || !token}>
          Save credential
        </Button>
      </Box>
    </Section>
  );
}

function Webhooks() {
  const feedback = useFeedback();
  const state = useAsync(() => notifications.webhooks(), []);
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState<string | null>(null);
  const add = (event: FormEvent) => {
    event.preventDefault();
    notifications.createWebhook(url.trim()).then((hook) => {
      setSecret(hook.secret ?? null);
      setUrl('');
      state.reload(true);
    }, feedback.error);
  };
  return (
    <Section id="webhooks-heading" title="Webhooks">
      {secret && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setSecret(null)}>
          Signing secret (shown once): <code>{secret}</code>
        </Alert>
      )}
      <AsyncView state={state} isEmpty={(d) => d.items.length === 0} empty="No webhooks." loadingLabel="Loading webhooks">
        {(data) => (
          <List dense aria-label="Webhooks">
            {data.items.map((w) => (
              <ListItem
                key={w.id}
                divider
                secondaryAction={
                  <Button
                    color="error"
                    size="small"
                    aria-label={`Delete webhook ${w.url}`}
                    onClick={() =>
                      notifications.deleteWebhook(w.id).then(() => state.reload(true), feedback.error)
                    }
                  >
                    Delete
                  </Button>
                }
              >
                <ListItemText primary={w.url} secondary={w.event_types?.join(', ')} sx={{ pr: 10, wordBreak: 'break-all' }} />
              </ListItem>
            ))}
          </List>
        )}
      </AsyncView>
      <Box component="form" onSubmit={add} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mt: 2 }}>
        <TextField label="Webhook URL" type="url" size="small" value={url} onChange={(e) => setUrl(e.target.value)} sx={{ minWidth: 280 }} />
        <Button type="submit" variant="contained" disabled={!/^https?:\/\//.test(url.trim())}>
          Add webhook
        </Button>
      </Box>
    </Section>
  );
}

export default function SettingsPage() {
  return (
    <>
      <PageHeading title="Settings" />
      <Profile />
      <Password />
      <ApiTokens />
      <ServiceCredentials />
      <Webhooks />
    </>
  );
}
