import { useMemo, useRef, useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router-dom';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import Card from '@mui/material/Card';
import CardContent from '@mui/material/CardContent';
import FormControlLabel from '@mui/material/FormControlLabel';
import IconButton from '@mui/material/IconButton';
import MenuItem from '@mui/material/MenuItem';
import Switch from '@mui/material/Switch';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import {
  admin,
  ApiError,
  errorMessage,
  jobs,
  services,
  templates,
  type JobCreate,
  type ReferencePanel,
  type Service,
} from '../api';
import { useAuth } from '../auth/AuthContext';
import { AsyncView } from '../components/AsyncView';
import { useFeedback } from '../components/Feedback';
import { FileUploader, type UploadItem } from '../components/FileUploader';
import { PageHeading } from '../components/PageHeading';
import { useAsync } from '../hooks/useAsync';

interface Target {
  serviceId: string;
  panelId: string;
}

const BUILDS = ['hg19', 'hg38'];
const MODES = [
  { value: 'imputation', label: 'Imputation' },
  { value: 'qc_only', label: 'Quality control only' },
];
const R2_FILTERS = ['0', '0.001', '0.1', '0.2', '0.3'];

function Step({ n, title, children }: { n: number; title: string; children: React.ReactNode }) {
  const id = `step-${n}`;
  return (
    <Card component="section" aria-labelledby={id} sx={{ mb: 2 }}>
      <CardContent>
        <Typography variant="h6" component="h2" id={id} gutterBottom>
          {n}. {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

/** Problems the platform will refuse anyway, shown before submitting (the server's 422 says the same). */
export function preflight(
  build: string,
  uploads: UploadItem[],
  targetServices: (Service | undefined)[],
): { fields: Record<string, string>; files: Record<string, string> } {
  const fields: Record<string, string> = {};
  const fileProblems: Record<string, string> = {};
  const michigan = targetServices.some((s) => s?.api_type === 'michigan');
  for (const item of uploads) {
    const vcf = item.result?.vcf;
    if (!vcf) continue;
    const prefixed = vcf.chromosomes.some((c) => c.startsWith('chr'));
    if (michigan && vcf.chromosomes.length > 1)
      fileProblems[item.key] = `Holds ${vcf.chromosomes.length} chromosomes; Michigan servers take one chromosome per file.`;
    else if (michigan && build === 'hg38' && vcf.chromosomes.length && !prefixed)
      fileProblems[item.key] = 'hg38 needs chromosome names with the "chr" prefix (chr20, not 20).';
    else if (michigan && build === 'hg19' && prefixed)
      fileProblems[item.key] = 'hg19 needs chromosome names without the "chr" prefix (20, not chr20).';
    if (vcf.build_hint && vcf.build_hint !== build)
      fields.build = `The file ${item.name} looks like ${vcf.build_hint}; the job says ${build}.`;
  }
  return { fields, files: fileProblems };
}

/** The form field a pre-flight problem code is about, e.g. "population_unsupported" → population. */
export function fieldOfProblem(code: string): string | undefined {
  if (/population/.test(code)) return 'population';
  if (/panel/.test(code)) return 'reference_panel_id';
  if (/build|prefix|chr/.test(code)) return 'build';
  if (/service|permission/.test(code)) return 'service_id';
  return undefined;
}

export default function NewJobPage() {
  const navigate = useNavigate();
  const feedback = useFeedback();
  const { user, isAdmin } = useAuth();
  const serviceList = useAsync(() => services.list(), []);
  // Only the services I may use: admins use all; others see their permissions when the API tells them.
  const allowed = useAsync<Set<number> | null>(async () => {
    if (!user || isAdmin) return null;
    try {
      const permissions = await admin.permissions(user.id);
      return permissions.all_services ? null : new Set(permissions.services.map((p) => p.service_id));
    } catch {
      return null;
    }
  }, [user?.id, isAdmin]);
  const templateList = useAsync(() => templates.list().catch(() => ({ items: [], total: 0, page: 1, page_size: 0 })), []);

  const [name, setName] = useState('');
  const [targets, setTargets] = useState<Target[]>([{ serviceId: '', panelId: '' }]);
  const [panelsByService, setPanelsByService] = useState<Record<string, ReferencePanel[]>>({});
  const [build, setBuild] = useState('hg19');
  const [phasing, setPhasing] = useState(true);
  const [population, setPopulation] = useState('');
  const [mode, setMode] = useState('imputation');
  const [r2, setR2] = useState('0');
  const [scheduled, setScheduled] = useState(false);
  const [runAt, setRunAt] = useState('');
  const [uploads, setUploads] = useState<UploadItem[]>([]);
  const [serverErrors, setServerErrors] = useState<{ fields: Record<string, string>; general?: string }>({ fields: {} });
  const [templateName, setTemplateName] = useState('');
  const [busy, setBusy] = useState(false);
  const idempotencyKey = useRef(crypto.randomUUID());

  const usable = useMemo(
    () =>
      (serviceList.data?.items ?? []).filter(
        (s) => s.is_active && (allowed.data == null || allowed.data.has(s.id)),
      ),
    [serviceList.data, allowed.data],
  );
  const serviceById = (id: string) => usable.find((s) => String(s.id) === id);

  const loadPanels = (serviceId: string) => {
    if (!serviceId || panelsByService[serviceId]) return;
    services.panels(serviceId).then(
      (page) => setPanelsByService((m) => ({ ...m, [serviceId]: page.items.filter((p) => p.is_active) })),
      feedback.error,
    );
  };

  const setTarget = (index: number, change: Partial<Target>) => {
    setTargets((list) => list.map((t, i) => (i === index ? { ...t, ...change } : t)));
    if (change.serviceId !== undefined) loadPanels(change.serviceId);
    if (index === 0 && change.panelId) {
      const panel = panelsByService[targets[0]?.serviceId ?? '']?.find((p) => String(p.id) === change.panelId);
      if (panel) {
        setBuild(panel.build);
        if (!panel.populations.includes(population)) setPopulation(panel.populations[0] ?? '');
      }
    }
  };

  const primaryPanel = panelsByService[targets[0]?.serviceId ?? '']?.find(
    (p) => String(p.id) === targets[0]?.panelId,
  );
  const check = preflight(build, uploads, targets.map((t) => serviceById(t.serviceId)));
  const fieldError = (field: string) => serverErrors.fields[field] ?? check.fields[field];
  const shownUploads = uploads.map((u) => ({ ...u, problem: check.files[u.key] ?? u.problem }));
  const done = uploads.filter((u) => u.state === 'done' && u.result);
  const uploading = uploads.some((u) => u.state === 'uploading');
  const complete = targets.every((t) => t.serviceId && t.panelId) && done.length > 0 && name.trim() !== '';
  const blocking = Object.keys(check.files).length > 0;

  const parameters = (): Omit<JobCreate, 'service_id' | 'reference_panel_id'> => ({
    name: name.trim(),
    build,
    phasing,
    population: population || null,
    mode,
    r2_filter: Number(r2),
    input_file_ids: done.map((u) => u.result!.id),
    run_at: scheduled && runAt ? new Date(runAt).toISOString() : null,
  });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setServerErrors({ fields: {} });
    try {
      const base = parameters();
      if (targets.length === 1) {
        const job = await jobs.create(
          { ...base, service_id: Number(targets[0]!.serviceId), reference_panel_id: Number(targets[0]!.panelId) },
          idempotencyKey.current,
        );
        feedback.success('Job submitted.');
        navigate(`/jobs/${job.id}`);
      } else {
        await jobs.multiService(
          {
            ...base,
            targets: targets.map((t) => ({ service_id: Number(t.serviceId), reference_panel_id: Number(t.panelId) })),
          },
          idempotencyKey.current,
        );
        feedback.success(`Submitted to ${targets.length} services.`);
        navigate('/jobs');
      }
    } catch (error) {
      setBusy(false);
      if (error instanceof ApiError && error.status === 422) {
        // Pre-flight problems ({code, message, file}) go next to the file or field they concern.
        const problems = (error.body as { problems?: { code: string; message: string; file?: string | null }[] } | null)?.problems;
        if (problems?.length) {
          const fields: Record<string, string> = {};
          const general: string[] = [];
          const byFile: Record<string, string> = {};
          for (const problem of problems) {
            const field = fieldOfProblem(problem.code);
            if (problem.file) byFile[problem.file] = problem.message;
            else if (field) fields[field] = problem.message;
            else general.push(problem.message);
          }
          setUploads((list) =>
            list.map((u) => {
              const message = byFile[String(u.result?.id)] ?? byFile[u.name];
              return message ? { ...u, problem: message } : u;
            }),
          );
          setServerErrors({ fields, general: general.join(' ') || undefined });
        } else if (error.field) setServerErrors({ fields: { [error.field]: error.message } });
        else setServerErrors({ fields: {}, general: error.message });
      } else setServerErrors({ fields: {}, general: errorMessage(error) });
    }
  };

  const saveTemplate = () => {
    const t = targets[0]!;
    const { build: b, phasing: ph, population: pop, mode: m, r2_filter } = parameters();
    templates
      .create({
        name: templateName.trim(),
        service_id: Number(t.serviceId),
        reference_panel_id: Number(t.panelId),
        build: b,
        phasing: ph,
        population: pop,
        mode: m,
        r2_filter,
      })
      .then(() => {
        feedback.success(`Template “${templateName.trim()}” saved.`);
        setTemplateName('');
        templateList.reload(true);
      }, feedback.error);
  };

  const applyTemplate = (id: string) => {
    const template = templateList.data?.items.find((t) => String(t.id) === id);
    if (!template) return;
    const p = template;
    if (p.service_id) {
      setTargets([{ serviceId: String(p.service_id), panelId: p.reference_panel_id ? String(p.reference_panel_id) : '' }]);
      loadPanels(String(p.service_id));
    }
    if (p.build) setBuild(p.build);
    if (p.phasing !== undefined) setPhasing(p.phasing);
    setPopulation(p.population ?? '');
    if (p.mode) setMode(p.mode);
    if (p.r2_filter != null) setR2(String(p.r2_filter));
    feedback.announce(`Template ${template.name} applied.`);
  };

  return (
    <>
      <PageHeading title="New job" />
      <AsyncView state={serviceList} loadingLabel="Loading services" isEmpty={(d) => d.items.length === 0} empty="No imputation service is registered yet.">
        {() => (
          <Box component="form" onSubmit={submit} noValidate aria-describedby={serverErrors.general ? 'form-error' : undefined}>
            {(templateList.data?.items.length ?? 0) > 0 && (
              <TextField select label="Start from a template" size="small" value="" onChange={(e) => applyTemplate(e.target.value)} sx={{ mb: 2, minWidth: 240 }}>
                {templateList.data!.items.map((t) => (
                  <MenuItem key={t.id} value={String(t.id)}>
                    {t.name}
                  </MenuItem>
                ))}
              </TextField>
            )}
            <Step n={1} title="Service and reference panel">
              {usable.length === 0 && (
                <Alert severity="info">You may not use any service yet. Ask an administrator for access.</Alert>
              )}
              {targets.map((target, index) => {
                const panels = panelsByService[target.serviceId];
                return (
                  <Box key={index} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mb: 2, alignItems: 'flex-start' }}>
                    <TextField
                      select
                      required
                      label={index === 0 ? 'Service' : `Service ${index + 1}`}
                      value={target.serviceId}
                      onChange={(e) => setTarget(index, { serviceId: e.target.value, panelId: '' })}
                      error={index === 0 && !!fieldError('service_id')}
                      helperText={(index === 0 && fieldError('service_id')) || ' '}
                      sx={{ minWidth: 240, flex: '1 1 240px' }}
                    >
                      {usable.map((s) => (
                        <MenuItem key={s.id} value={String(s.id)}>
                          {s.name}
                          {s.health_status !== 'healthy' ? ` (${s.health_status})` : ''}
                        </MenuItem>
                      ))}
                    </TextField>
                    <TextField
                      select
                      required
                      label={index === 0 ? 'Reference panel' : `Reference panel ${index + 1}`}
                      value={target.panelId}
                      disabled={!target.serviceId}
                      onChange={(e) => setTarget(index, { panelId: e.target.value })}
                      error={index === 0 && !!fieldError('reference_panel_id')}
                      helperText={
                        (index === 0 && fieldError('reference_panel_id')) ||
                        (target.serviceId && panels?.length === 0 ? 'This service has no active panel.' : ' ')
                      }
                      sx={{ minWidth: 240, flex: '1 1 240px' }}
                    >
                      {(panels ?? []).map((p) => (
                        <MenuItem key={p.id} value={String(p.id)}>
                          {p.name} ({p.build})
                        </MenuItem>
                      ))}
                    </TextField>
                    {index > 0 && (
                      <IconButton
                        aria-label={`Remove service ${index + 1}`}
                        onClick={() => setTargets((list) => list.filter((_, i) => i !== index))}
                      >
                        ×
                      </IconButton>
                    )}
                    {serviceById(target.serviceId) && serviceById(target.serviceId)!.health_status !== 'healthy' && (
                      <Alert severity="warning" sx={{ flexBasis: '100%' }}>
                        {serviceById(target.serviceId)!.name} is {serviceById(target.serviceId)!.health_status} right now; the job waits until
                        it answers.
                      </Alert>
                    )}
                  </Box>
                );
              })}
              <Button onClick={() => setTargets((list) => [...list, { serviceId: '', panelId: '' }])}>
                Also submit to another service
              </Button>
            </Step>
            <Step n={2} title="Parameters">
              <Box sx={{ display: 'grid', gridTemplateColumns: { xs: '1fr', sm: '1fr 1fr' }, gap: 2 }}>
                <TextField
                  label="Job name"
                  required
                  value={name}
                  onChange={(e) => setName(e.target.value)}
                  error={!!fieldError('name')}
                  helperText={fieldError('name') ?? ' '}
                />
                <TextField
                  select
                  label="Genome build"
                  value={build}
                  onChange={(e) => setBuild(e.target.value)}
                  error={!!fieldError('build')}
                  helperText={fieldError('build') ?? ' '}
                >
                  {BUILDS.map((b) => (
                    <MenuItem key={b} value={b}>
                      {b}
                    </MenuItem>
                  ))}
                </TextField>
                <TextField
                  select
                  label="Population"
                  value={population}
                  onChange={(e) => setPopulation(e.target.value)}
                  error={!!fieldError('population')}
                  helperText={fieldError('population') ?? (primaryPanel ? ' ' : 'Pick a panel first.')}
                >
                  <MenuItem value="">None (skip population checks)</MenuItem>
                  {(primaryPanel?.populations ?? []).map((p) => (
                    <MenuItem key={p} value={p}>
                      {p}
                    </MenuItem>
                  ))}
                </TextField>
                <TextField select label="Mode" value={mode} onChange={(e) => setMode(e.target.value)} helperText=" ">
                  {MODES.map((m) => (
                    <MenuItem key={m.value} value={m.value}>
                      {m.label}
                    </MenuItem>
                  ))}
                </TextField>
                <TextField
                  select
                  label="r² filter"
                  value={r2}
                  onChange={(e) => setR2(e.target.value)}
                  helperText="Drop imputed variants below this quality."
                >
                  {R2_FILTERS.map((v) => (
                    <MenuItem key={v} value={v}>
                      {v === '0' ? 'Off' : v}
                    </MenuItem>
                  ))}
                </TextField>
                <FormControlLabel control={<Switch checked={phasing} onChange={(e) => setPhasing(e.target.checked)} />} label="Phase the input (Eagle / Beagle)" />
              </Box>
            </Step>
            <Step n={3} title="Input files">
              <FileUploader items={shownUploads} onChange={setUploads} />
              {fieldError('input_file_ids') && (
                <Alert severity="error" role="alert">
                  {fieldError('input_file_ids')}
                </Alert>
              )}
            </Step>
            <Step n={4} title="Submit">
              <FormControlLabel control={<Switch checked={scheduled} onChange={(e) => setScheduled(e.target.checked)} />} label="Schedule for later" />
              {scheduled && (
                <TextField
                  type="datetime-local"
                  label="Start at"
                  value={runAt}
                  onChange={(e) => setRunAt(e.target.value)}
                  slotProps={{ inputLabel: { shrink: true } }}
                  sx={{ ml: { sm: 2 }, mt: { xs: 1, sm: 0 } }}
                />
              )}
              {serverErrors.general && (
                <Alert severity="error" role="alert" id="form-error" sx={{ my: 2 }}>
                  {serverErrors.general}
                </Alert>
              )}
              <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mt: 2, alignItems: 'center' }}>
                <Button type="submit" variant="contained" disabled={!complete || uploading || blocking || busy}>
                  {busy ? 'Submitting…' : targets.length > 1 ? `Submit to ${targets.length} services` : 'Submit job'}
                </Button>
                <TextField size="small" label="Template name" value={templateName} onChange={(e) => setTemplateName(e.target.value)} />
                <Button onClick={saveTemplate} disabled={!templateName.trim() || !targets[0]?.panelId}>
                  Save as template
                </Button>
              </Box>
              {!complete && (
                <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
                  To submit: name the job, pick a service and panel, and upload at least one VCF.
                </Typography>
              )}
            </Step>
          </Box>
        )}
      </AsyncView>
    </>
  );
}
