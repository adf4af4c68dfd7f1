import { useEffect, useState } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import Checkbox from '@mui/material/Checkbox';
import FormControlLabel from '@mui/material/FormControlLabel';
import Link from '@mui/material/Link';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import Pagination from '@mui/material/Pagination';
import Switch from '@mui/material/Switch';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import Typography from '@mui/material/Typography';
import { CHANNELS, notifications, type Channel, type NotificationPreference } from '../api';
import { AsyncView } from '../components/AsyncView';
import { useFeedback } from '../components/Feedback';
import { PageHeading } from '../components/PageHeading';
import { formatDateTime } from '../format';
import { useAsync } from '../hooks/useAsync';

const PAGE_SIZE = 20;

function Preferences() {
  const feedback = useFeedback();
  const state = useAsync(async () => (await notifications.preferences()).preferences, []);
  const [draft, setDraft] = useState<NotificationPreference[] | null>(null);
  const prefs = draft ?? state.data ?? [];
  const channelLabel: Record<Channel, string> = { in_app: 'In app', email: 'E-mail', webhook: 'Webhook' };
  const toggle = (event: string, channel: Channel) =>
    setDraft(prefs.map((p) => (p.event_type === event ? { ...p, [channel]: !p[channel] } : p)));

  return (
    <Card component="section" aria-labelledby="prefs-heading" sx={{ mt: 3 }}>
      <CardContent>
        <Typography variant="h6" component="h2" id="prefs-heading" gutterBottom>
          Preferences
        </Typography>
        <AsyncView state={state} isEmpty={(d) => d.length === 0} empty="No notification preferences are available." loadingLabel="Loading preferences">
          {() => (
            <Box sx={{ overflowX: 'auto' }}>
              <Table size="small" aria-labelledby="prefs-heading">
                <TableHead>
                  <TableRow>
                    <TableCell>Event</TableCell>
                    {CHANNELS.map((c) => (
                      <TableCell key={c} align="center">
                        {channelLabel[c]}
                      </TableCell>
                    ))}
                  </TableRow>
                </TableHead>
                <TableBody>
                  {prefs.map((pref) => (
                    <TableRow key={pref.event_type}>
                      <TableCell component="th" scope="row">
                        {pref.event_type}
                      </TableCell>
                      {CHANNELS.map((c) => (
                        <TableCell key={c} align="center">
                          <Checkbox
                            checked={pref[c]}
                            onChange={() => toggle(pref.event_type, c)}
                            slotProps={{ input: { 'aria-label': `${pref.event_type} by ${channelLabel[c]}` } }}
                          />
                        </TableCell>
                      ))}
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
              <Button
                variant="contained"
                sx={{ mt: 2 }}
                disabled={!draft}
                onClick={() =>
                  notifications.savePreferences(prefs).then(() => {
                    feedback.success('Preferences saved.');
                    state.setData(prefs);
                    setDraft(null);
                  }, feedback.error)
                }
              >
                Save preferences
              </Button>
            </Box>
          )}
        </AsyncView>
      </CardContent>
    </Card>
  );
}

export default function NotificationsPage() {
  const feedback = useFeedback();
  const [page, setPage] = useState(1);
  const [unreadOnly, setUnreadOnly] = useState(false);
  const state = useAsync(
    () => notifications.list({ page, page_size: PAGE_SIZE, unread: unreadOnly || undefined }),
    [page, unreadOnly],
  );
  useEffect(() => {
    const onNotification = () => state.reload(true);
    window.addEventListener('fi:notification', onNotification);
    return () => window.removeEventListener('fi:notification', onNotification);
  }, [state]);

  const markRead = (id: number) =>
    notifications.markRead(id).then(() => state.reload(true), feedback.error);

  return (
    <>
      <PageHeading
        title="Notifications"
        actions={
          <Button
            onClick={() =>
              notifications.markAllRead().then(() => {
                feedback.success('All notifications marked as read.');
                state.reload(true);
              }, feedback.error)
            }
          >
            Mark all as read
          </Button>
        }
      />
      <FormControlLabel
        control={<Switch checked={unreadOnly} onChange={(e) => { setUnreadOnly(e.target.checked); setPage(1); }} />}
        label="Unread only"
      />
      <AsyncView state={state} isEmpty={(d) => d.items.length === 0} empty={unreadOnly ? 'Nothing unread.' : 'No notifications yet.'} loadingLabel="Loading notifications">
        {(data) => (
          <>
            <List aria-label="Notifications">
              {data.items.map((n) => (
                <ListItem
                  key={n.id}
                  divider
                  sx={{ bgcolor: n.is_read ? undefined : 'action.hover' }}
                  secondaryAction={
                    !n.is_read && (
                      <Button size="small" onClick={() => markRead(n.id)} aria-label={`Mark “${n.title}” as read`}>
                        Mark read
                      </Button>
                    )
                  }
                >
                  <ListItemText
                    primary={
                      <>
                        {!n.is_read && <Box component="span" sx={{ fontWeight: 700 }}>Unread: </Box>}
                        {n.link ? (
                          <Link component={RouterLink} to={n.link.replace(/^\/?(#\/)?/, '/')}>
                            {n.title}
                          </Link>
                        ) : (
                          n.title
                        )}
                      </>
                    }
                    secondary={`${n.message} · ${formatDateTime(n.created_at)}`}
                    sx={{ pr: 10 }}
                  />
                </ListItem>
              ))}
            </List>
            {data.total > PAGE_SIZE && (
              <Pagination
                count={Math.ceil(data.total / PAGE_SIZE)}
                page={page}
                onChange={(_, p) => setPage(p)}
                sx={{ mt: 2 }}
                getItemAriaLabel={(type, p) => (type === 'page' ? `Page ${p}` : `Go to ${type} page`)}
              />
            )}
          </>
        )}
      </AsyncView>
      <Preferences />
    </>
  );
}
