import Chip from '@mui/material/Chip';
import type { HealthStatus, JobStatus } from '../api';

const JOB_COLORS: Record<JobStatus, 'default' | 'info' | 'primary' | 'success' | 'error' | 'warning'> = {
  pending: 'default',
  queued: 'default',
  submitting: 'info',
  running: 'primary',
  downloading: 'info',
  completed: 'success',
  failed: 'error',
  cancelled: 'warning',
};

export function JobStatusChip({ status }: { status: JobStatus }) {
  return <Chip size="small" label={status} color={JOB_COLORS[status] ?? 'default'} variant="outlined" />;
}

const HEALTH_LABELS: Record<string, string> = {
  healthy: 'Healthy',
  unhealthy: 'Unhealthy',
  degraded: 'Degraded',
  unknown: 'Unknown',
};

/** Health as text and colour, never colour alone. */
export function HealthBadge({ status }: { status: HealthStatus | null | undefined }) {
  const key = status ?? 'unknown';
  const color = key === 'healthy' ? 'success' : key === 'unhealthy' ? 'error' : key === 'degraded' ? 'warning' : 'default';
  return <Chip size="small" label={HEALTH_LABELS[key] ?? key} color={color} />;
}
