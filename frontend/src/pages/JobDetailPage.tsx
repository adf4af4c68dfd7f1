import { useEffect, useState } from 'react';
import { Link as RouterLink, useNavigate, useParams } from 'react-router-dom';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import Grid from '@mui/material/Grid2';
import LinearProgress from '@mui/material/LinearProgress';
import Link from '@mui/material/Link';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemText from '@mui/material/ListItemText';
import Table from '@mui/material/Table';
import TableBody from '@mui/material/TableBody';
import TableCell from '@mui/material/TableCell';
import TableContainer from '@mui/material/TableContainer';
import TableHead from '@mui/material/TableHead';
import TableRow from '@mui/material/TableRow';
import Typography from '@mui/material/Typography';
import { files, jobs, LIVE_STATUSES, services, type Job, type StatusChange } from '../api';
import { AsyncView } from '../components/AsyncView';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { useFeedback } from '../components/Feedback';
import { PageHeading } from '../components/PageHeading';
import { JobStatusChip } from '../components/StatusChips';
import { explainRemoteError, formatBytes, formatDateTime } from '../format';
import { useAsync, useInterval } from '../hooks/useAsync';

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

function TimelineEntry({ change }: { change: StatusChange }) {
  const [showRaw, setShowRaw] = useState(false);
  const raw = change.new_status === 'failed' ? change.message : null;
  const plain = explainRemoteError(raw);
  return (
    <ListItem alignItems="flex-start" divider>
      <ListItemText
        primary={
          <Box sx={{ display: 'flex', gap: 1, alignItems: 'center', flexWrap: 'wrap' }}>
            <JobStatusChip status={change.new_status} />
            <Typography variant="body2" component="time" dateTime={change.occurred_at}>
              {formatDateTime(change.occurred_at)}
            </Typography>
          </Box>
        }
        secondary={
          <>
            {change.message && !plain && <Box component="span" sx={{ display: 'block' }}>{change.message}</Box>}
            {plain && <Box component="span" sx={{ display: 'block', color: 'error.main' }}>{plain}</Box>}
            {raw && plain && (
              <>
                <Link component="button" type="button" variant="body2" onClick={() => setShowRaw(!showRaw)} aria-expanded={showRaw}>
                  {showRaw ? 'Hide' : 'Show'} the server's message
                </Link>
                {showRaw && (
                  <Box component="pre" sx={{ whiteSpace: 'pre-wrap', fontSize: 12, m: 0 }}>
                    {raw}
                  </Box>
                )}
              </>
            )}
          </>
        }
        secondaryTypographyProps={{ component: 'div' }}
      />
    </ListItem>
  );
}

function ResultPassword({ job }: { job: Job }) {
  const [password, setPassword] = useState<string | null>(null);
  const feedback = useFeedback();
  if (password)
    return (
      <Typography>
        Result password: <Box component="code" sx={{ fontSize: 16, userSelect: 'all' }}>{password}</Box>
      </Typography>
    );
  return (
    <Button
      variant="outlined"
      onClick={() => jobs.resultPassword(job.id).then((r) => setPassword(r.password), feedback.error)}
    >
      Reveal the result password
    </Button>
  );
}

export default function JobDetailPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const feedback = useFeedback();
  const job = useAsync(() => jobs.get(id), [id]);
  const results = useAsync(() => jobs.files(id), [id]);
  const inputs = useAsync(
    async () => Promise.all((job.data?.input_file_ids ?? []).map((fileId) => files.get(fileId))),
    [job.data?.input_file_ids?.join(',')],
  );
  const serviceId = job.data?.service_id;
  const service = useAsync(async () => (serviceId === undefined ? null : services.get(serviceId)), [serviceId]);
  const panels = useAsync(async () => (serviceId === undefined ? null : services.panels(serviceId)), [serviceId]);
  const [confirmCancel, setConfirmCancel] = useState(false);
  const live = job.data ? LIVE_STATUSES.includes(job.data.status) : false;

  useInterval(() => job.reload(true), live ? 5000 : null);
  const status = job.data?.status;
  const { reload: reloadResults } = results;
  useEffect(() => {
    if (status === 'completed') reloadResults(true);
  }, [status, reloadResults]);
  useEffect(() => {
    const onNotification = () => job.reload(true);
    window.addEventListener('fi:notification', onNotification);
    return () => window.removeEventListener('fi:notification', onNotification);
  }, [job]);
  const { announce } = feedback;
  useEffect(() => {
    if (status) announce(`Job status: ${status}`);
  }, [status, announce]);

  const cancel = () =>
    jobs.cancel(id).then(
      (updated) => {
        job.setData(updated);
        feedback.success('The job is being cancelled.');
        job.reload(true);
      },
      feedback.error,
    );
  const retry = () =>
    jobs.retry(id).then((created) => {
      feedback.success('A new attempt was started.');
      navigate(`/jobs/${created.id}`);
    }, feedback.error);

  return (
    <>
      <PageHeading
        title={job.data?.name ?? 'Job'}
        actions={
          job.data && (
            <Box sx={{ display: 'flex', gap: 1 }}>
              {live && (
                <Button color="error" variant="outlined" onClick={() => setConfirmCancel(true)}>
                  Cancel job
                </Button>
              )}
              {(job.data.status === 'failed' || job.data.status === 'cancelled') && (
                <Button variant="contained" onClick={retry}>
                  Retry
                </Button>
              )}
            </Box>
          )
        }
      />
      <ConfirmDialog
        open={confirmCancel}
        title="Cancel this job?"
        message="The job is stopped here and on the imputation server. Results not yet downloaded are lost."
        confirmLabel="Cancel job"
        onConfirm={cancel}
        onClose={() => setConfirmCancel(false)}
      />
      <AsyncView state={job} loadingLabel="Loading job" skeletonRows={6}>
        {(j) => (
          <Grid container spacing={2}>
            <Grid size={12}>
              <Box sx={{ display: 'flex', alignItems: 'center', gap: 2, flexWrap: 'wrap' }}>
                <JobStatusChip status={j.status} />
                {j.status_message && <Typography>{j.status_message}</Typography>}
              </Box>
              {live && (
                <LinearProgress
                  sx={{ mt: 1 }}
                  variant={j.progress != null ? 'determinate' : 'indeterminate'}
                  value={j.progress ?? undefined}
                  aria-label="Job progress"
                />
              )}
              {j.status === 'failed' && j.error_message && (
                <Alert severity="error" sx={{ mt: 1 }}>
                  {explainRemoteError(j.error_message) ?? j.error_message}
                </Alert>
              )}
            </Grid>
            <Grid size={{ xs: 12, md: 6 }}>
              <Section id="timeline-heading" title="Status timeline">
                {j.status_history?.length ? (
                  <List dense aria-labelledby="timeline-heading">
                    {j.status_history.map((change, index) => (
                      <TimelineEntry key={index} change={change} />
                    ))}
                  </List>
                ) : (
                  <Typography color="text.secondary">No status changes yet.</Typography>
                )}
              </Section>
            </Grid>
            <Grid size={{ xs: 12, md: 6 }}>
              <Section id="params-heading" title="Parameters">
                <Box component="dl" sx={{ display: 'grid', gridTemplateColumns: 'auto 1fr', columnGap: 2, rowGap: 0.5, m: 0 }}>
                  {(
                    [
                      ['Service', j.service_name ?? service.data?.name ?? j.service_id],
                      [
                        'Reference panel',
                        j.reference_panel_name ??
                          panels.data?.items.find((p) => p.id === j.reference_panel_id)?.name ??
                          j.reference_panel_id,
                      ],
                      ['Build', j.build],
                      ['Phasing', j.phasing ? 'yes' : 'no'],
                      ['Population', j.population ?? '—'],
                      ['Mode', j.mode],
                      ['r² filter', j.r2_filter ?? '—'],
                      ['Created', formatDateTime(j.created_at)],
                      ['Remote id', j.remote_job_id ?? '—'],
                    ] as [string, string | number][]
                  ).map(([k, v]) => (
                    <Box key={k} sx={{ display: 'contents' }}>
                      <Box component="dt" sx={{ color: 'text.secondary' }}>{k}</Box>
                      <Box component="dd" sx={{ m: 0 }}>{v}</Box>
                    </Box>
                  ))}
                </Box>
                {j.status === 'completed' && (j.has_result_password ?? (j.api_type ?? service.data?.api_type) === 'michigan') && (
                  <Box sx={{ mt: 2 }}>
                    <ResultPassword job={j} />
                  </Box>
                )}
              </Section>
            </Grid>
            <Grid size={{ xs: 12, md: 6 }}>
              <Section id="inputs-heading" title="Input files">
                <AsyncView state={inputs} isEmpty={(d) => d.length === 0} empty="No input files." loadingLabel="Loading input files">
                  {(list) => (
                    <List dense aria-labelledby="inputs-heading">
                      {list.map((f) => (
                        <ListItem key={f.id}>
                          <ListItemText
                            primary={f.filename}
                            secondary={`${formatBytes(f.size_bytes)}${f.vcf ? ` · ${f.vcf.sample_count} samples · ${f.vcf.chromosomes.join(', ')}` : ''}`}
                          />
                        </ListItem>
                      ))}
                    </List>
                  )}
                </AsyncView>
              </Section>
            </Grid>
            <Grid size={{ xs: 12, md: 6 }}>
              <Section id="results-heading" title="Results">
                <AsyncView
                  state={results}
                  isEmpty={(d) => d.items.length === 0}
                  empty={j.status === 'completed' ? 'No result files were recorded.' : 'Results appear here when the job completes.'}
                  loadingLabel="Loading result files"
                >
                  {(data) => (
                    <TableContainer>
                      <Table size="small" aria-labelledby="results-heading">
                        <TableHead>
                          <TableRow>
                            <TableCell>File</TableCell>
                            <TableCell align="right">Size</TableCell>
                            <TableCell sx={{ display: { xs: 'none', sm: 'table-cell' } }}>SHA-256</TableCell>
                          </TableRow>
                        </TableHead>
                        <TableBody>
                          {data.items.map((f) => (
                            <TableRow key={f.id}>
                              <TableCell>
                                <Link
                                  component="button"
                                  type="button"
                                  onClick={() => files.download(f.id, f.filename).catch(feedback.error)}
                                  aria-label={`Download ${f.filename}`}
                                >
                                  {f.filename}
                                </Link>
                              </TableCell>
                              <TableCell align="right">{formatBytes(f.size_bytes)}</TableCell>
                              <TableCell sx={{ display: { xs: 'none', sm: 'table-cell' }, fontFamily: 'monospace', fontSize: 12, wordBreak: 'break-all' }}>
                                {f.sha256 ?? '—'}
                              </TableCell>
                            </TableRow>
                          ))}
                        </TableBody>
                      </Table>
                    </TableContainer>
                  )}
                </AsyncView>
              </Section>
            </Grid>
          </Grid>
        )}
      </AsyncView>
      <Typography sx={{ mt: 2 }}>
        <Link component={RouterLink} to="/jobs">
          Back to jobs
        </Link>
      </Typography>
    </>
  );
}
