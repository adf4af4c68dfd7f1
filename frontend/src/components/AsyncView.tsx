// Loading, empty and error states for every async view, so each page shows them the same way.
import type { ReactNode } from 'react';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import CircularProgress from '@mui/material/CircularProgress';
import Skeleton from '@mui/material/Skeleton';
import Typography from '@mui/material/Typography';
import { ApiError, errorMessage } from '../api';

export function Spinner({ label = 'Loading' }: { label?: string }) {
  return (
    <Box role="status" aria-label={label} sx={{ display: "flex", alignItems: "center", gap: 1, p: 2 }}>
      <CircularProgress size={24} aria-hidden="true" />
      <Typography variant="body2">{label}…</Typography>
    </Box>
  );
}

/** Placeholder rows shaped like the content, announced once as "Loading". */
export function SkeletonRows({ rows = 4, label = 'Loading' }: { rows?: number; label?: string }) {
  return (
    <Box role="status" aria-label={label} aria-busy="true" sx={{ py: 1 }}>
      {Array.from({ length: rows }, (_, index) => (
        <Skeleton key={index} variant="rounded" height={32} sx={{ mb: 1 }} />
      ))}
    </Box>
  );
}

export function ErrorState({ error, onRetry, title }: { error: unknown; onRetry?: () => void; title?: string }) {
  const forbidden = error instanceof ApiError && error.status === 403;
  return (
    <Alert
      severity="error"
      role="alert"
      action={
        onRetry && !forbidden ? (
          <Button color="inherit" size="small" onClick={onRetry}>
            Try again
          </Button>
        ) : undefined
      }
    >
      <strong>{title ?? (forbidden ? 'You do not have access to this.' : 'Could not load this.')}</strong>{' '}
      {errorMessage(error)}
    </Alert>
  );
}

export function EmptyState({ children }: { children: ReactNode }) {
  return (
    <Box sx={{ p: 3, textAlign: 'center', color: 'text.secondary' }} data-testid="empty-state">
      <Typography>{children}</Typography>
    </Box>
  );
}

interface AsyncViewProps<T> {
  state: { data: T | undefined; error: unknown; loading: boolean; reload: (quiet?: boolean) => void };
  isEmpty?: (data: T) => boolean;
  empty?: ReactNode;
  loadingLabel?: string;
  skeletonRows?: number;
  children: (data: T) => ReactNode;
}

export function AsyncView<T>({ state, isEmpty, empty, loadingLabel, skeletonRows, children }: AsyncViewProps<T>) {
  if (state.loading && state.data === undefined) return <SkeletonRows rows={skeletonRows} label={loadingLabel} />;
  if (state.error) return <ErrorState error={state.error} onRetry={() => state.reload()} />;
  if (state.data === undefined) return null;
  if (isEmpty?.(state.data)) return <EmptyState>{empty ?? 'Nothing here yet.'}</EmptyState>;
  return <>{children(state.data)}</>;
}
