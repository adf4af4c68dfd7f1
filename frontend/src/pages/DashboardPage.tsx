import { Link as RouterLink } from 'react-router-dom';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import Grid from '@mui/material/Grid2';
import Link from '@mui/material/Link';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import Typography from '@mui/material/Typography';
import { dashboard, JOB_STATUSES, services as servicesApi, type Dashboard } from '../api';
import { AsyncView } from '../components/AsyncView';
import { RecentJobs } from '../components/JobTable';
import { PageHeading } from '../components/PageHeading';
import { HealthBadge } from '../components/StatusChips';
import { useAsync, useInterval } from '../hooks/useAsync';

function Section({ title, children }: { title: string; children: React.ReactNode }) {
  const id = `section-${title.replace(/\W+/g, '-').toLowerCase()}`;
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

function statusCounts(data: Dashboard): Record<string, number> {
  const s = data.job_stats;
  return s ? { running: s.running, completed: s.completed, failed: s.failed } : {};
}

export default function DashboardPage() {
  const state = useAsync(() => dashboard.get(), []);
  // Live health comes from the registry itself, refreshed with the rest of the page.
  const serviceList = useAsync(() => servicesApi.list(), []);
  useInterval(() => {
    state.reload(true);
    serviceList.reload(true);
  }, 15000);

  return (
    <>
      <PageHeading
        title="Dashboard"
        actions={
          <Button variant="contained" component={RouterLink} to="/jobs/new">
            New job
          </Button>
        }
      />
      <AsyncView state={state} loadingLabel="Loading dashboard" skeletonRows={6}>
        {(data) => {
          const counts = statusCounts(data);
          const total = data.job_stats?.total ?? 0;
          const unread = data.notifications?.unread ?? 0;
          const serviceItems = serviceList.data?.items ?? [];
          return (
            <Grid container spacing={2}>
              {data.unavailable && data.unavailable.length > 0 && (
                <Grid size={12}>
                  <Alert severity="warning">Some figures are missing: {data.unavailable.join(', ')} did not answer.</Alert>
                </Grid>
              )}
              <Grid size={{ xs: 12, md: 6 }}>
                <Section title="My jobs by status">
                  {total === 0 ? (
                    <Typography color="text.secondary">
                      No jobs yet. <Link component={RouterLink} to="/jobs/new">Submit your first job</Link>.
                    </Typography>
                  ) : (
                    <Box component="dl" sx={{ display: 'grid', gridTemplateColumns: 'auto 1fr', gap: 0.5, m: 0 }}>
                      <Box component="dt">all</Box>
                      <Box component="dd" sx={{ m: 0, fontWeight: 600 }}>
                        {total}
                      </Box>
                      {JOB_STATUSES.filter((s) => counts[s]).map((s) => (
                        <Box key={s} sx={{ display: 'contents' }}>
                          <Box component="dt">
                            <Link component={RouterLink} to={`/jobs?status=${s}`}>
                              {s}
                            </Link>
                          </Box>
                          <Box component="dd" sx={{ m: 0, fontWeight: 600 }}>
                            {counts[s]}
                          </Box>
                        </Box>
                      ))}
                    </Box>
                  )}
                </Section>
              </Grid>
              <Grid size={{ xs: 12, md: 6 }}>
                <Section title="Notifications">
                  <Typography>
                    {unread ? `${unread} unread` : 'Nothing unread.'}{' '}
                    <Link component={RouterLink} to="/notifications">
                      See all
                    </Link>
                  </Typography>
                </Section>
              </Grid>
              <Grid size={{ xs: 12, md: 7 }}>
                <Section title="Recent jobs">
                  {data.recent_jobs?.length ? (
                    <RecentJobs jobs={data.recent_jobs} caption="Recent jobs" />
                  ) : (
                    <Typography color="text.secondary">No recent jobs.</Typography>
                  )}
                </Section>
              </Grid>
              <Grid size={{ xs: 12, md: 5 }}>
                <Section title="Services">
                  {serviceList.error ? (
                    <Typography color="error">The service registry did not answer.</Typography>
                  ) : serviceItems.length ? (
                    <List dense aria-label="Services and their health">
                      {serviceItems.map((service) => (
                        <ListItem key={service.id} secondaryAction={<HealthBadge status={service.health_status} />}>
                          <ListItemText
                            primary={
                              <Link component={RouterLink} to={`/services/${service.id}`}>
                                {service.name}
                              </Link>
                            }
                            secondary={service.response_time_ms != null ? `${service.response_time_ms} ms` : undefined}
                          />
                        </ListItem>
                      ))}
                    </List>
                  ) : (
                    <Typography color="text.secondary">No services registered.</Typography>
                  )}
                </Section>
              </Grid>
            </Grid>
          );
        }}
      </AsyncView>
    </>
  );
}
