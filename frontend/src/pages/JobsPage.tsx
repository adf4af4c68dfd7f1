import { useEffect, useState } from 'react';
import { Link as RouterLink, useSearchParams } from 'react-router-dom';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import LinearProgress from '@mui/material/LinearProgress';
import Link from '@mui/material/Link';
import MenuItem from '@mui/material/MenuItem';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TablePagination from '@mui/material/TablePagination';
import TableRow from '@mui/material/TableRow';
import TableSortLabel from '@mui/material/TableSortLabel';
import TextField from '@mui/material/TextField';
import {
  JOB_SORT_FIELDS,
  JOB_STATUSES,
  jobs,
  LIVE_STATUSES,
  services,
  type JobSortField,
  type JobStatus,
} from '../api';
import { AsyncView } from '../components/AsyncView';
import { useFeedback } from '../components/Feedback';
import { PageHeading } from '../components/PageHeading';
import { JobStatusChip } from '../components/StatusChips';
import { formatDateTime } from '../format';
import { useAsync, useInterval } from '../hooks/useAsync';

type SortKey = JobSortField;
const hideOnPhone = { display: { xs: 'none', md: 'table-cell' } };

export default function JobsPage() {
  const [params, setParams] = useSearchParams();
  const status = (params.get('status') ?? '') as JobStatus | '';
  const serviceId = params.get('service_id') ?? '';
  const search = params.get('search') ?? '';
  const page = Number(params.get('page') ?? '1');
  const pageSize = Number(params.get('page_size') ?? '20');
  // The whole list is sorted by the server; an unknown column in the address falls back to newest first.
  const asked = params.get('sort') as SortKey | null;
  const sort: SortKey = asked && JOB_SORT_FIELDS.includes(asked) ? asked : 'created_at';
  const order = params.get('order') === 'asc' ? 'asc' : 'desc';
  const [searchText, setSearchText] = useState(search);
  const feedback = useFeedback();

  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!('page' in changes)) next.delete('page');
    setParams(next, { replace: true });
  };

  // Typing in the search box filters after a short pause, not on every key.
  useEffect(() => {
    const id = setTimeout(() => searchText !== search && update({ search: searchText }), 350);
    return () => clearTimeout(id);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [searchText]);

  const serviceList = useAsync(() => services.list(), []);
  const state = useAsync(
    () =>
      jobs.list({
        status,
        service_id: serviceId ? Number(serviceId) : '',
        search,
        page,
        page_size: pageSize,
        sort: order === 'desc' ? `-${sort}` : sort,
      }),
    [status, serviceId, search, page, pageSize, sort, order],
  );

  // Live: poll while any job on the page is still moving, and at once when a notification arrives.
  const anyLive = state.data?.items.some((j) => LIVE_STATUSES.includes(j.status)) ?? false;
  useInterval(() => state.reload(true), anyLive ? 5000 : 30000);
  useEffect(() => {
    const onNotification = () => state.reload(true);
    window.addEventListener('fi:notification', onNotification);
    return () => window.removeEventListener('fi:notification', onNotification);
  }, [state]);

  const { announce } = feedback;
  const total = state.data?.total;
  useEffect(() => {
    if (total !== undefined) announce(`${total} job${total === 1 ? '' : 's'} found.`);
  }, [total, announce]);

  const sortHeader = (key: SortKey, label: string) => (
    <TableSortLabel
      active={sort === key}
      direction={sort === key ? order : 'asc'}
      onClick={() => update({ sort: key, order: sort === key && order === 'asc' ? 'desc' : 'asc' })}
    >
      {label}
    </TableSortLabel>
  );

  return (
    <>
      <PageHeading
        title="Jobs"
        actions={
          <Button variant="contained" component={RouterLink} to="/jobs/new">
            New job
          </Button>
        }
      />
      <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mb: 2 }} role="search" aria-label="Filter jobs">
        <TextField label="Search by name" size="small" value={searchText} onChange={(e) => setSearchText(e.target.value)} />
        <TextField select label="Status" size="small" value={status} onChange={(e) => update({ status: e.target.value })} sx={{ minWidth: 150 }}>
          <MenuItem value="">All statuses</MenuItem>
          {JOB_STATUSES.map((s) => (
            <MenuItem key={s} value={s}>
              {s}
            </MenuItem>
          ))}
        </TextField>
        <TextField select label="Service" size="small" value={serviceId} onChange={(e) => update({ service_id: e.target.value })} sx={{ minWidth: 170 }}>
          <MenuItem value="">All services</MenuItem>
          {serviceList.data?.items.map((s) => (
            <MenuItem key={s.id} value={String(s.id)}>
              {s.name}
            </MenuItem>
          ))}
        </TextField>
      </Box>
      <AsyncView
        state={state}
        isEmpty={(d) => d.items.length === 0}
        empty={status || serviceId || search ? 'No job matches these filters.' : 'You have no jobs yet.'}
        loadingLabel="Loading jobs"
        skeletonRows={8}
      >
        {(data) => (
          <Box aria-busy={state.loading}>
            <TableContainer>
              <Table size="small" aria-label="Jobs">
                <TableHead>
                  <TableRow>
                    <TableCell sortDirection={sort === 'name' ? order : false}>{sortHeader('name', 'Name')}</TableCell>
                    <TableCell sortDirection={sort === 'status' ? order : false}>{sortHeader('status', 'Status')}</TableCell>
                    <TableCell sx={hideOnPhone}>Service</TableCell>
                    <TableCell sx={hideOnPhone}>Progress</TableCell>
                    <TableCell sortDirection={sort === 'created_at' ? order : false} sx={hideOnPhone}>
                      {sortHeader('created_at', 'Created')}
                    </TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {data.items.map((job) => (
                    <TableRow key={job.id} hover>
                      <TableCell>
                        <Link component={RouterLink} to={`/jobs/${job.id}`}>
                          {job.name}
                        </Link>
                      </TableCell>
                      <TableCell>
                        <JobStatusChip status={job.status} />
                      </TableCell>
                      <TableCell sx={hideOnPhone}>
                        {job.service_name ?? serviceList.data?.items.find((s) => s.id === job.service_id)?.name ?? job.service_id}
                      </TableCell>
                      <TableCell sx={{ ...hideOnPhone, minWidth: 100 }}>
                        {job.progress != null && LIVE_STATUSES.includes(job.status) ? (
                          <LinearProgress variant="determinate" value={job.progress} aria-label={`Progress of ${job.name}`} />
                        ) : (
                          '—'
                        )}
                      </TableCell>
                      <TableCell sx={hideOnPhone}>{formatDateTime(job.created_at)}</TableCell>
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
              rowsPerPageOptions={[10, 20, 50, 100]}
              onPageChange={(_, p) => update({ page: String(p + 1) })}
              onRowsPerPageChange={(e) => update({ page_size: e.target.value })}
            />
          </Box>
        )}
      </AsyncView>
    </>
  );
}
