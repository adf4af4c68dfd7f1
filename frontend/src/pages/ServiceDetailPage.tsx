import { useParams } from 'react-router-dom';
import Box from '@mui/material/Box';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import Chip from '@mui/material/Chip';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import Typography from '@mui/material/Typography';
import { services } from '../api';
import { AsyncView } from '../components/AsyncView';
import { HealthHistoryChart } from '../components/Charts';
import { PageHeading } from '../components/PageHeading';
import { HealthBadge } from '../components/StatusChips';
import { formatDateTime, formatNumber } from '../format';
import { useAsync } from '../hooks/useAsync';

export default function ServiceDetailPage() {
  const { id = '' } = useParams();
  const service = useAsync(() => services.get(id), [id]);
  const panels = useAsync(() => services.panels(id), [id]);
  const history = useAsync(() => services.healthHistory(id), [id]);

  return (
    <>
      <PageHeading title={service.data?.name ?? 'Service'} />
      <AsyncView state={service} loadingLabel="Loading service">
        {(s) => (
          <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 1, alignItems: 'center', mb: 2 }}>
            <HealthBadge status={s.health_status} />
            <Chip size="small" label={s.api_type} variant="outlined" />
            <Typography variant="body2">
              {[s.location, s.country_code].filter(Boolean).join(', ')} · {s.base_url} · last checked{' '}
              {formatDateTime(s.last_checked_at)}
              {s.response_time_ms != null && ` in ${s.response_time_ms} ms`}
            </Typography>
          </Box>
        )}
      </AsyncView>
      <Card component="section" aria-labelledby="panels-heading" sx={{ mb: 2 }}>
        <CardContent>
          <Typography variant="h6" component="h2" id="panels-heading" gutterBottom>
            Reference panels
          </Typography>
          <AsyncView state={panels} isEmpty={(d) => d.items.length === 0} empty="This service has no reference panels." loadingLabel="Loading panels">
            {(data) => (
              <TableContainer>
                <Table size="small" aria-labelledby="panels-heading">
                  <TableHead>
                    <TableRow>
                      <TableCell>Panel</TableCell>
                      <TableCell>Build</TableCell>
                      <TableCell>Populations</TableCell>
                      <TableCell align="right">Samples</TableCell>
                      <TableCell align="right">Variants</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {data.items.map((p) => (
                      <TableRow key={p.id}>
                        <TableCell>
                          {p.name}
                          {!p.is_active && ' (inactive)'}
                        </TableCell>
                        <TableCell>{p.build}</TableCell>
                        <TableCell>{p.populations.join(', ') || '—'}</TableCell>
                        <TableCell align="right">{formatNumber(p.samples_count)}</TableCell>
                        <TableCell align="right">{formatNumber(p.variants_count)}</TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              </TableContainer>
            )}
          </AsyncView>
        </CardContent>
      </Card>
      <Card component="section" aria-labelledby="history-heading">
        <CardContent>
          <Typography variant="h6" component="h2" id="history-heading" gutterBottom>
            Recent health
          </Typography>
          <AsyncView state={history} isEmpty={(d) => d.items.length === 0} empty="No health checks recorded yet." loadingLabel="Loading health history">
            {(data) => (
              <HealthHistoryChart
                label="Response time of recent health checks"
                points={[...data.items]
                  .sort((a, b) => a.checked_at.localeCompare(b.checked_at))
                  .map((h) => ({ at: h.checked_at, value: h.response_time_ms ?? null, ok: h.status === 'healthy' }))}
              />
            )}
          </AsyncView>
        </CardContent>
      </Card>
    </>
  );
}
