import { useState } from 'react';
import Button from '@mui/material/Button';
import ToggleButton from '@mui/material/ToggleButton';
import ToggleButtonGroup from '@mui/material/ToggleButtonGroup';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import Grid from '@mui/material/Grid2';
import LinearProgress from '@mui/material/LinearProgress';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import Typography from '@mui/material/Typography';
import { monitoring } from '../../api';
import { AsyncView } from '../../components/AsyncView';
import { BarList } from '../../components/Charts';
import { useFeedback } from '../../components/Feedback';
import { PageHeading } from '../../components/PageHeading';
import { HealthBadge } from '../../components/StatusChips';
import { formatDateTime } from '../../format';
import { useAsync, useInterval } from '../../hooks/useAsync';

type Period = 'day' | 'week' | 'month';

function Section({ id, title, children }: { id: string; title: string; children: React.ReactNode }) {
  return (
    <Card component="section" aria-labelledby={id} sx={{ height: '100%' }}>
      <CardContent>
        <Typography variant="h6" component="h2" id={id} gutterBottom>
          {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

export default function MonitoringPage() {
  const feedback = useFeedback();
  const health = useAsync(() => monitoring.overall(), []);
  const alerts = useAsync(() => monitoring.alerts(), []);
  const system = useAsync(() => monitoring.system(), []);
  const stats = useAsync(() => monitoring.stats(), []);
  const [period, setPeriod] = useState<Period>('week');
  useInterval(() => {
    health.reload(true);
    alerts.reload(true);
    system.reload(true);
  }, 15000);

  return (
    <>
      <PageHeading title="Monitoring" />
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, md: 6 }}>
          <Section id="components-heading" title="Components">
            <AsyncView state={health} loadingLabel="Loading component health" isEmpty={(d) => d.services.length === 0} empty="No component reported.">
              {(data) => (
                <>
                  <Typography component="div" gutterBottom>
                    Overall: <HealthBadge status={data.overall_status} />
                  </Typography>
                  <Table size="small" aria-labelledby="components-heading">
                    <TableHead>
                      <TableRow>
                        <TableCell>Component</TableCell>
                        <TableCell>Status</TableCell>
                        <TableCell align="right">Response</TableCell>
                      </TableRow>
                    </TableHead>
                    <TableBody>
                      {data.services.map((c) => (
                        <TableRow key={c.service_name}>
                          <TableCell>{c.service_name}</TableCell>
                          <TableCell>
                            <HealthBadge status={c.status} />
                          </TableCell>
                          <TableCell align="right">{c.response_time_ms != null ? `${Math.round(c.response_time_ms)} ms` : '—'}</TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                </>
              )}
            </AsyncView>
          </Section>
        </Grid>
        <Grid size={{ xs: 12, md: 6 }}>
          <Section id="alerts-heading" title="Alerts">
            <AsyncView state={alerts} loadingLabel="Loading alerts" isEmpty={(d) => d.items.length === 0} empty="No alerts. All quiet.">
              {(data) => (
                <List dense aria-labelledby="alerts-heading">
                  {data.items.map((a) => (
                    <ListItem
                      key={a.id}
                      divider
                      secondaryAction={
                        !a.acknowledged_at &&
                        a.status !== 'resolved' && (
                          <Button
                            size="small"
                            aria-label={`Acknowledge ${a.title}`}
                            onClick={() =>
                              monitoring.acknowledge(a.id).then(() => {
                                feedback.success('Alert acknowledged.');
                                alerts.reload(true);
                              }, feedback.error)
                            }
                          >
                            Acknowledge
                          </Button>
                        )
                      }
                    >
                      <ListItemText
                        primary={`${a.severity.toUpperCase()}: ${a.title}`}
                        secondary={`${a.status} · ${formatDateTime(a.opened_at)} · ${a.message}`}
                        sx={{ pr: 12 }}
                      />
                    </ListItem>
                  ))}
                </List>
              )}
            </AsyncView>
          </Section>
        </Grid>
        <Grid size={{ xs: 12, md: 6 }}>
          <Section id="system-heading" title="System">
            <AsyncView state={system} loadingLabel="Loading system metrics">
              {(m) => (
                <>
                  {(
                    [
                      ['CPU', m.cpu_percent],
                      ['Memory', m.memory_percent],
                      ['Disk', m.disk_percent],
                    ] as [string, number][]
                  ).map(([label, value]) => (
                    <div key={label}>
                      <Typography variant="body2">
                        {label}: {Math.round(value)} %
                      </Typography>
                      <LinearProgress
                        variant="determinate"
                        value={value}
                        color={value > 90 ? 'error' : value > 75 ? 'warning' : 'primary'}
                        aria-label={`${label} use`}
                        sx={{ mb: 1 }}
                      />
                    </div>
                  ))}
                </>
              )}
            </AsyncView>
          </Section>
        </Grid>
        <Grid size={{ xs: 12, md: 6 }}>
          <Section id="stats-heading" title="Job statistics">
            <AsyncView state={stats} loadingLabel="Loading statistics">
              {(all) => {
                const s = all[period];
                const byStatus = Object.entries(s.jobs_by_status).map(([name, value]) => ({ name, value }));
                const perService = s.per_service.map((p) => ({ name: `Service ${p.service_id}`, value: p.jobs }));
                const choose = (
                  <ToggleButtonGroup
                    exclusive
                    size="small"
                    value={period}
                    onChange={(_, value: Period | null) => value && setPeriod(value)}
                    aria-label="Period"
                    sx={{ mb: 1 }}
                  >
                    <ToggleButton value="day">Last day</ToggleButton>
                    <ToggleButton value="week">Last week</ToggleButton>
                    <ToggleButton value="month">Last month</ToggleButton>
                  </ToggleButtonGroup>
                );
                if (byStatus.length === 0 && perService.length === 0)
                  return (
                    <>
                      {choose}
                      <Typography color="text.secondary">No jobs counted in this period.</Typography>
                    </>
                  );
                return (
                  <>
                    {choose}
                    <Typography variant="body2" gutterBottom>
                      {s.total_jobs} jobs, success rate {s.success_rate != null ? `${Math.round(s.success_rate)} %` : '—'},{' '}
                      {s.uploads} uploads
                    </Typography>
                    {byStatus.length > 0 && <BarList label="Jobs by status" data={byStatus} />}
                    {perService.length > 0 && (
                      <>
                        <Typography variant="subtitle2" component="h3" sx={{ mt: 2 }}>
                          Jobs per service
                        </Typography>
                        <BarList label="Jobs per service" data={perService} />
                      </>
                    )}
                    <Typography sx={{ mt: 1 }}>Active users: {s.active_users}</Typography>
                  </>
                );
              }}
            </AsyncView>
          </Section>
        </Grid>
      </Grid>
    </>
  );
}
