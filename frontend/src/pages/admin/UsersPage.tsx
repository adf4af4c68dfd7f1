import { Fragment, useEffect, useState } from 'react';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Chip from '@mui/material/Chip';
import Dialog from '@mui/material/Dialog';
import DialogActions from '@mui/material/DialogActions';
import DialogContent from '@mui/material/DialogContent';
import DialogTitle from '@mui/material/DialogTitle';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import MenuItem from '@mui/material/MenuItem';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TablePagination from '@mui/material/TablePagination';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import { admin, services, type Role, type User } from '../../api';
import { AsyncView } from '../../components/AsyncView';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { useFeedback } from '../../components/Feedback';
import { PageHeading } from '../../components/PageHeading';
import { formatDateTime } from '../../format';
import { useAsync } from '../../hooks/useAsync';

const ROLES: Role[] = ['researcher', 'service_admin', 'admin'];

/** An empty field is no limit; otherwise a whole number of jobs, 0 or more (undefined: not valid). */
function parseQuota(text: string): number | null | undefined {
  if (text.trim() === '') return null;
  const value = Number(text);
  return Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** The inline form that changes the monthly quota of one direct grant. */
function QuotaEditor({
  user,
  serviceId,
  serviceName,
  current,
  onDone,
}: {
  user: User;
  serviceId: number;
  serviceName: string;
  current: number | null;
  onDone: (saved: boolean) => void;
}) {
  const feedback = useFeedback();
  const [text, setText] = useState(current == null ? '' : String(current));
  const [saving, setSaving] = useState(false);
  const quota = parseQuota(text);
  const save = () => {
    if (quota === undefined) return;
    setSaving(true);
    admin.setQuota(user.id, serviceId, quota).then(
      () => {
        feedback.success(`Quota of ${serviceName} set to ${quota == null ? 'no limit' : `${quota} jobs a month`}.`);
        onDone(true);
      },
      (error: unknown) => {
        setSaving(false);
        feedback.error(error);
      },
    );
  };
  return (
    <Box
      component="form"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
      sx={{ display: 'flex', flexWrap: 'wrap', alignItems: 'flex-start', gap: 1, px: 2, pb: 1 }}
    >
      <TextField
        label={`Monthly job quota of ${serviceName}`}
        size="small"
        type="number"
        autoFocus
        value={text}
        onChange={(e) => setText(e.target.value)}
        error={quota === undefined}
        helperText={quota === undefined ? 'A whole number, 0 or more' : 'Empty: no limit'}
        slotProps={{ htmlInput: { min: 0, step: 1 } }}
      />
      <Button type="submit" variant="contained" size="small" disabled={quota === undefined || saving}>
        Save quota
      </Button>
      <Button size="small" onClick={() => onDone(false)}>
        Cancel
      </Button>
    </Box>
  );
}

function PermissionsDialog({ user, onClose }: { user: User; onClose: () => void }) {
  const feedback = useFeedback();
  const perms = useAsync(async () => (await admin.permissions(user.id)).services, [user.id]);
  const serviceList = useAsync(() => services.list(), []);
  const [serviceId, setServiceId] = useState('');
  const [quota, setQuota] = useState('');
  const [editing, setEditing] = useState<number | null>(null);
  const nameOf = (id: number) => serviceList.data?.items.find((s) => s.id === id)?.name ?? `Service ${id}`;
  return (
    <Dialog open onClose={onClose} aria-labelledby="perm-title" fullWidth maxWidth="sm">
      <DialogTitle id="perm-title">Service permissions of {user.username}</DialogTitle>
      <DialogContent>
        <AsyncView state={perms} isEmpty={(d) => d.length === 0} empty="No service granted yet." loadingLabel="Loading permissions">
          {(list) => (
            <List dense aria-label="Granted services">
              {list.map((p) => (
                <Fragment key={`${p.service_id}-${p.via ?? ''}`}>
                  <ListItem
                    secondaryAction={
                      p.via && p.via !== 'user' ? undefined : (
                        <>
                          <Button
                            size="small"
                            aria-label={`Change the quota of ${nameOf(p.service_id)}`}
                            disabled={editing === p.service_id}
                            onClick={() => setEditing(p.service_id)}
                          >
                            Quota
                          </Button>
                          <Button
                            size="small"
                            color="error"
                            aria-label={`Revoke ${nameOf(p.service_id)}`}
                            onClick={() => admin.revoke(user.id, p.service_id).then(() => perms.reload(true), feedback.error)}
                          >
                            Revoke
                          </Button>
                        </>
                      )
                    }
                  >
                    <ListItemText
                      primary={nameOf(p.service_id)}
                      secondary={`${p.monthly_quota != null ? `${p.monthly_quota} jobs a month` : 'no quota'}${p.via && p.via !== 'user' ? ` · through ${p.via}` : ''}`}
                    />
                  </ListItem>
                  {editing === p.service_id && (p.via ?? 'user') === 'user' && (
                    <li>
                      <QuotaEditor
                        user={user}
                        serviceId={p.service_id}
                        serviceName={nameOf(p.service_id)}
                        current={p.monthly_quota ?? null}
                        onDone={(saved) => {
                          setEditing(null);
                          if (saved) perms.reload(true);
                        }}
                      />
                    </li>
                  )}
                </Fragment>
              ))}
            </List>
          )}
        </AsyncView>
        <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mt: 2 }}>
          <TextField select label="Service" size="small" value={serviceId} onChange={(e) => setServiceId(e.target.value)} sx={{ minWidth: 180 }}>
            {(serviceList.data?.items ?? []).map((s) => (
              <MenuItem key={s.id} value={String(s.id)}>
                {s.name}
              </MenuItem>
            ))}
          </TextField>
          <TextField label="Monthly job quota" size="small" type="number" value={quota} onChange={(e) => setQuota(e.target.value)} helperText="Empty: no limit" />
          <Button
            variant="contained"
            disabled={!serviceId}
            onClick={() =>
              admin.grant(user.id, Number(serviceId), quota ? Number(quota) : null).then(() => {
                feedback.success('Permission granted.');
                setServiceId('');
                perms.reload(true);
              }, feedback.error)
            }
          >
            Grant
          </Button>
        </Box>
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Close</Button>
      </DialogActions>
    </Dialog>
  );
}

export default function UsersPage() {
  const feedback = useFeedback();
  const [searchText, setSearchText] = useState('');
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(1);
  const [pageSize, setPageSize] = useState(20);
  const [deactivating, setDeactivating] = useState<User | null>(null);
  const [permissionsOf, setPermissionsOf] = useState<User | null>(null);
  useEffect(() => {
    const id = setTimeout(() => {
      setSearch(searchText);
      setPage(1);
    }, 350);
    return () => clearTimeout(id);
  }, [searchText]);
  const state = useAsync(() => admin.users({ search, page, page_size: pageSize }), [search, page, pageSize]);

  const setRole = (user: User, role: Role) =>
    admin.updateUser(user.id, { roles: [role] }).then(() => {
      feedback.success(`${user.username} is now ${role}.`);
      state.reload(true);
    }, feedback.error);

  return (
    <>
      <PageHeading title="Users" />
      <Box role="search" aria-label="Find users" sx={{ mb: 2 }}>
        <TextField label="Search users" size="small" value={searchText} onChange={(e) => setSearchText(e.target.value)} />
      </Box>
      <AsyncView state={state} isEmpty={(d) => d.items.length === 0} empty="No user matches." loadingLabel="Loading users">
        {(data) => (
          <>
            <TableContainer>
              <Table size="small" aria-label="Users">
                <TableHead>
                  <TableRow>
                    <TableCell>User</TableCell>
                    <TableCell>Role</TableCell>
                    <TableCell sx={{ display: { xs: 'none', md: 'table-cell' } }}>Last sign-in</TableCell>
                    <TableCell>Actions</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {data.items.map((u) => (
                    <TableRow key={u.id}>
                      <TableCell>
                        {u.username}
                        <Box component="span" sx={{ display: 'block', fontSize: 12, color: 'text.secondary' }}>
                          {u.email}
                        </Box>
                        {u.is_active === false && <Chip size="small" label="deactivated" />}
                      </TableCell>
                      <TableCell>
                        <TextField
                          select
                          size="small"
                          value={u.roles[0] ?? 'researcher'}
                          onChange={(e) => setRole(u, e.target.value as Role)}
                          slotProps={{ htmlInput: { 'aria-label': `Role of ${u.username}` } }}
                          disabled={u.is_active === false}
                        >
                          {ROLES.map((r) => (
                            <MenuItem key={r} value={r}>
                              {r}
                            </MenuItem>
                          ))}
                        </TextField>
                      </TableCell>
                      <TableCell sx={{ display: { xs: 'none', md: 'table-cell' } }}>{formatDateTime(u.last_login_at)}</TableCell>
                      <TableCell>
                        <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 1 }}>
                          <Button size="small" onClick={() => setPermissionsOf(u)} aria-label={`Service permissions of ${u.username}`}>
                            Permissions
                          </Button>
                          {u.is_active !== false && (
                            <Button size="small" color="error" onClick={() => setDeactivating(u)} aria-label={`Deactivate ${u.username}`}>
                              Deactivate
                            </Button>
                          )}
                        </Box>
                      </TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </TableContainer>
            <TablePagination
              component="div"
              count={data.total}
              page={page - 1}
              rowsPerPage={pageSize}
              rowsPerPageOptions={[10, 20, 50]}
              onPageChange={(_, p) => setPage(p + 1)}
              onRowsPerPageChange={(e) => {
                setPageSize(Number(e.target.value));
                setPage(1);
              }}
            />
          </>
        )}
      </AsyncView>
      <ConfirmDialog
        open={deactivating !== null}
        title={`Deactivate ${deactivating?.username ?? ''}?`}
        message="They are signed out at once and can no longer use the platform or its API."
        confirmLabel="Deactivate"
        onClose={() => setDeactivating(null)}
        onConfirm={() => {
          const user = deactivating!;
          admin.deactivate(user.id).then(() => {
            feedback.success(`${user.username} was deactivated.`);
            state.reload(true);
          }, feedback.error);
        }}
      />
      {permissionsOf && <PermissionsDialog user={permissionsOf} onClose={() => setPermissionsOf(null)} />}
    </>
  );
}
