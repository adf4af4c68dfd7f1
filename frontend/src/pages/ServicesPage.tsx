import { useMemo, useState } from 'react';
import { Link as RouterLink } from 'react-router-dom';
import Box from '@mui/material/Box';
import Link from '@mui/material/Link';
import MenuItem from '@mui/material/MenuItem';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import { services, type Service } from '../api';
import { AsyncView, EmptyState } from '../components/AsyncView';
import { PageHeading } from '../components/PageHeading';
import { HealthBadge } from '../components/StatusChips';
import { formatDateTime } from '../format';
import { useAsync, useInterval } from '../hooks/useAsync';

const hideOnPhone = { display: { xs: 'none', md: 'table-cell' } };

export default function ServicesPage() {
  const state = useAsync(() => services.list(), []);
  useInterval(() => state.reload(true), 30000);
  const [search, setSearch] = useState('');
  const [apiType, setApiType] = useState('');
  const [health, setHealth] = useState('');

  const types = useMemo(
    () => Array.from(new Set(state.data?.items.map((s) => s.api_type) ?? [])).sort(),
    [state.data],
  );
  const filter = (items: Service[]) =>
    items.filter(
      (s) =>
        (!search || `${s.name} ${s.location ?? ''} ${s.country_code ?? ''}`.toLowerCase().includes(search.toLowerCase())) &&
        (!apiType || s.api_type === apiType) &&
        (!health || s.health_status === health),
    );

  return (
    <>
      <PageHeading title="Services" />
      <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mb: 2 }} role="search" aria-label="Filter services">
        <TextField label="Search" size="small" value={search} onChange={(e) => setSearch(e.target.value)} />
        <TextField select label="Type" size="small" value={apiType} onChange={(e) => setApiType(e.target.value)} sx={{ minWidth: 140 }}>
          <MenuItem value="">All types</MenuItem>
          {types.map((t) => (
            <MenuItem key={t} value={t}>
              {t}
            </MenuItem>
          ))}
        </TextField>
        <TextField select label="Health" size="small" value={health} onChange={(e) => setHealth(e.target.value)} sx={{ minWidth: 140 }}>
          <MenuItem value="">Any health</MenuItem>
          <MenuItem value="healthy">Healthy</MenuItem>
          <MenuItem value="unhealthy">Unhealthy</MenuItem>
          <MenuItem value="unknown">Unknown</MenuItem>
        </TextField>
      </Box>
      <AsyncView state={state} isEmpty={(d) => d.items.length === 0} empty="No services are registered yet." loadingLabel="Loading services">
        {(data) => {
          const rows = filter(data.items);
          if (rows.length === 0) return <EmptyState>No service matches these filters.</EmptyState>;
          return (
            <TableContainer>
              <Table size="small" aria-label="Imputation services">
                <TableHead>
                  <TableRow>
                    <TableCell>Service</TableCell>
                    <TableCell>Health</TableCell>
                    <TableCell sx={hideOnPhone}>Response time</TableCell>
                    <TableCell sx={hideOnPhone}>Last check</TableCell>
                    <TableCell sx={hideOnPhone}>Country</TableCell>
                    <TableCell>Type</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {rows.map((s) => (
                    <TableRow key={s.id}>
                      <TableCell>
                        <Link component={RouterLink} to={`/services/${s.id}`}>
                          {s.name}
                        </Link>
                      </TableCell>
                      <TableCell>
                        <HealthBadge status={s.health_status} />
                      </TableCell>
                      <TableCell sx={hideOnPhone}>{s.response_time_ms != null ? `${s.response_time_ms} ms` : '—'}</TableCell>
                      <TableCell sx={hideOnPhone}>{formatDateTime(s.last_checked_at)}</TableCell>
                      <TableCell sx={hideOnPhone}>{[s.location, s.country_code].filter(Boolean).join(', ') || '—'}</TableCell>
                      <TableCell>{s.api_type}</TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </TableContainer>
          );
        }}
      </AsyncView>
    </>
  );
}
