import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api';
import { explainRemoteError, formatBytes } from '../format';
import { preflight } from '../pages/NewJobPage';
import { renderWithProviders } from '../test/render';
import { AsyncView } from './AsyncView';
import { useFeedback } from './Feedback';
import { SkipLink } from './Layout';
import { PageHeading } from './PageHeading';
import { HealthBadge, JobStatusChip } from './StatusChips';

const base = { data: undefined, error: null, loading: false, reload: vi.fn() };

describe('AsyncView', () => {
  it('shows a busy skeleton while loading', () => {
    renderWithProviders(<AsyncView state={{ ...base, loading: true }} loadingLabel="Loading jobs">{() => 'data'}</AsyncView>);
    expect(screen.getByRole('status', { name: 'Loading jobs' })).toHaveAttribute('aria-busy', 'true');
  });

  it('shows the error with a retry button that reloads', async () => {
    const reload = vi.fn();
    renderWithProviders(
      <AsyncView state={{ ...base, error: new ApiError(503, 'upstream_unavailable', 'The job processor is unavailable.', null), reload }}>
        {() => 'data'}
      </AsyncView>,
    );
    expect(screen.getByRole('alert')).toHaveTextContent('Could not load this. The job processor is unavailable.');
    await userEvent.click(screen.getByRole('button', { name: 'Try again' }));
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it('says access is missing on 403, without a retry', () => {
    renderWithProviders(
      <AsyncView state={{ ...base, error: new ApiError(403, 'forbidden', 'Admins only.', null) }}>{() => 'data'}</AsyncView>,
    );
    expect(screen.getByRole('alert')).toHaveTextContent('You do not have access to this. Admins only.');
    expect(screen.queryByRole('button')).toBeNull();
  });

  it('shows the empty message, then the data', () => {
    const { rerender } = renderWithProviders(
      <AsyncView state={{ ...base, data: [] as number[] }} isEmpty={(d) => d.length === 0} empty="No jobs yet.">
        {(d) => <p>{d.length} rows</p>}
      </AsyncView>,
    );
    expect(screen.getByTestId('empty-state')).toHaveTextContent('No jobs yet.');
    rerender(
      <AsyncView state={{ ...base, data: [1, 2] }} isEmpty={(d) => d.length === 0}>
        {(d) => <p>{d.length} rows</p>}
      </AsyncView>,
    );
    expect(screen.getByText('2 rows')).toBeInTheDocument();
  });
});

function FeedbackButtons() {
  const feedback = useFeedback();
  return (
    <>
      <button onClick={() => feedback.error(new ApiError(409, 'conflict', 'That name is taken.', null))}>fail</button>
      <button onClick={() => feedback.success('Saved.')}>ok</button>
      <button onClick={() => feedback.announce('12 jobs found.')}>announce</button>
    </>
  );
}

describe('notification system and live region', () => {
  it('shows an API error as an alert toast and success as a status toast', async () => {
    renderWithProviders(<FeedbackButtons />);
    await userEvent.click(screen.getByRole('button', { name: 'fail' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That name is taken.');
    await userEvent.click(screen.getByRole('button', { name: /close/i }));
    await waitFor(() => expect(screen.queryByRole('alert')).toBeNull());
    await userEvent.click(screen.getByRole('button', { name: 'ok' }));
    expect(await screen.findByText('Saved.')).toBeInTheDocument();
  });

  it('announces to screen readers through the polite live region', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    renderWithProviders(<FeedbackButtons />);
    await userEvent.click(screen.getByRole('button', { name: 'announce' }));
    act(() => void vi.advanceTimersByTime(100));
    expect(screen.getByTestId('live-region')).toHaveTextContent('12 jobs found.');
    expect(screen.getByTestId('live-region')).toHaveAttribute('aria-live', 'polite');
    vi.useRealTimers();
  });
});

describe('accessibility helpers', () => {
  it('focuses the page heading and sets the document title', () => {
    renderWithProviders(<PageHeading title="Jobs" />);
    expect(screen.getByRole('heading', { level: 1, name: 'Jobs' })).toHaveFocus();
    expect(document.title).toBe('Jobs · Federated Imputation');
  });

  it('the skip link moves focus to the main content', async () => {
    renderWithProviders(
      <>
        <SkipLink />
        <main id="main" tabIndex={-1}>
          content
        </main>
      </>,
    );
    await userEvent.tab();
    expect(screen.getByRole('link', { name: 'Skip to main content' })).toHaveFocus();
    await userEvent.keyboard('{Enter}');
    expect(screen.getByRole('main')).toHaveFocus();
  });

  it('badges say their state in words', () => {
    renderWithProviders(
      <>
        <HealthBadge status="unhealthy" />
        <JobStatusChip status="failed" />
      </>,
    );
    expect(screen.getByText('Unhealthy')).toBeInTheDocument();
    expect(screen.getByText('failed')).toBeInTheDocument();
  });
});

describe('helpers', () => {
  it('formats sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MB');
    expect(formatBytes(undefined)).toBe('—');
  });

  it('explains remote errors in plain words', () => {
    expect(explainRemoteError('HTTP 401 Unauthorized')).toBe(
      'The imputation server refused the credentials. Check or renew your token for this service in Settings.',
    );
    expect(explainRemoteError('Error: Chromosome name chr20 does not match prefix')).toBe(
      'The chromosome names do not match the build: hg19 expects no "chr" prefix, hg38 expects "chr".',
    );
    expect(explainRemoteError('weird')).toBeNull();
  });

  it('pre-flight flags multi-chromosome files and chr naming for Michigan, and build hints for all', () => {
    const upload = (key: string, chromosomes: string[], build_hint: string | null) => ({
      key,
      name: `${key}.vcf.gz`,
      size: 10,
      progress: 100,
      state: 'done' as const,
      result: { id: key, filename: `${key}.vcf.gz`, size_bytes: 10, sha256: 'x', vcf: { sample_count: 5, chromosomes, build_hint, phased: false, warnings: [] } },
    });
    const michiganService = { api_type: 'michigan' } as Parameters<typeof preflight>[2][number];
    const result = preflight('hg38', [upload('a', ['20', '21'], null), upload('b', ['20'], 'hg19')], [michiganService]);
    expect(result.files).toEqual({
      a: 'Holds 2 chromosomes; Michigan servers take one chromosome per file.',
      b: 'hg38 needs chromosome names with the "chr" prefix (chr20, not 20).',
    });
    expect(result.fields).toEqual({ build: 'The file b.vcf.gz looks like hg19; the job says hg38.' });
    expect(preflight('hg38', [upload('a', ['chr20', 'chr21'], 'hg38')], [{ api_type: 'ga4gh' } as typeof michiganService])).toEqual({ fields: {}, files: {} });
  });
});
