import { useState } from 'react';
import Box from '@mui/material/Box';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TablePagination from '@mui/material/TablePagination';
import TableRow from '@mui/material/TableRow';
import TextField from '@mui/material/TextField';
import { admin } from '../../api';
import { AsyncView } from '../../components/AsyncView';
import { PageHeading } from '../../components/PageHeading';
import { formatDateTime } from '../../format';
import { useAsync } from '../../hooks/useAsync';

export default function AuditPage() {
  const [action, setAction] = useState('');
  const [page, setPage] = useState(1);
  const [pageSize, setPageSize] = useState(50);
  const state = useAsync(() => admin.audit({ action, page, page_size: pageSize }), [action, page, pageSize]);
  return (
    <>
      <PageHeading title="Audit log" />
      <Box role="search" aria-label="Filter the audit log" sx={{ mb: 2 }}>
        <TextField
          label="Action"
          size="small"
          value={action}
          onChange={(e) => {
            setAction(e.target.value);
            setPage(1);
          }}
          helperText="e.g. login, token.create, user.deactivate"
        />
      </Box>
      <AsyncView state={state} isEmpty={(d) => d.items.length === 0} empty="No audit entries." loadingLabel="Loading audit log" skeletonRows={8}>
        {(data) => (
          <>
            <TableContainer>
              <Table size="small" aria-label="Audit log">
                <TableHead>
                  <TableRow>
                    <TableCell>When</TableCell>
                    <TableCell>Action</TableCell>
                    <TableCell>Who</TableCell>
                    <TableCell sx={{ display: { xs: 'none', md: 'table-cell' } }}>Target</TableCell>
                    <TableCell sx={{ display: { xs: 'none', md: 'table-cell' } }}>Address</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {data.items.map((entry) => (
                    <TableRow key={entry.id}>
                      <TableCell>{formatDateTime(entry.created_at)}</TableCell>
                      <TableCell>{entry.action}</TableCell>
                      <TableCell>{entry.actor ?? entry.user_id ?? '—'}</TableCell>
                      <TableCell sx={{ display: { xs: 'none', md: 'table-cell' } }}>{entry.target_type ? `${entry.target_type} ${entry.target_id ?? ''}` : '—'}</TableCell>
                      <TableCell sx={{ display: { xs: 'none', md: 'table-cell' } }}>{entry.ip_address ?? '—'}</TableCell>
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
              rowsPerPageOptions={[20, 50, 100]}
              onPageChange={(_, p) => setPage(p + 1)}
              onRowsPerPageChange={(e) => {
                setPageSize(Number(e.target.value));
                setPage(1);
              }}
            />
          </>
        )}
      </AsyncView>
    </>
  );
}
