import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { ilifu, job, michigan, page, panel1000g } from '../test/fixtures';
import { fill, renderApp } from '../test/render';
import { apiError, server } from '../test/server';

const grants = (ids: number[]) => ({
  user_id: 7,
  roles: ['researcher'],
  services: ids.map((service_id) => ({ service_id, monthly_quota: null, via: 'user' })),
  all_services: false,
});

const inputFile = {
  id: '5',
  filename: 'chr20.vcf.gz',
  size_bytes: 2048,
  sha256: 'aa',
  vcf: { sample_count: 50, chromosomes: ['20'], build_hint: 'hg19', phased: false, warnings: [] },
};

function jobHandlers(current: ReturnType<typeof job>, results: object[] = []) {
  return [
    http.get('/api/jobs/42', () => HttpResponse.json(current)),
    http.get('/api/jobs/42/files', () => HttpResponse.json(page(results))),
    http.get('/api/files/5', () => HttpResponse.json(inputFile)),
    http.get('/api/services/1', () => HttpResponse.json(michigan)),
    http.get('/api/services/1/panels', () => HttpResponse.json(page([panel1000g]))),
  ];
}

describe('job page', () => {
  it('shows the status timeline, progress, parameters and input files of a running job', async () => {
    server.use(...jobHandlers(job()));
    renderApp('/jobs/42');
    expect(await screen.findByRole('heading', { level: 1, name: 'chr20 batch' })).toBeInTheDocument();
    const timeline = screen.getByRole('list', { name: 'Status timeline' });
    expect(within(timeline).getAllByRole('listitem')).toHaveLength(2);
    expect(within(timeline).getByText('Running on the remote server')).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: 'Job progress' })).toHaveAttribute('aria-valuenow', '40');
    expect(screen.getByText('1000 Genomes Phase 3')).toBeInTheDocument();
    expect(await screen.findByText('chr20.vcf.gz')).toBeInTheDocument();
    expect(screen.getByText('2.0 KB · 50 samples · 20')).toBeInTheDocument();
    expect(screen.getByText('Results appear here when the job completes.')).toBeInTheDocument();
  });

  it('cancels a running job after confirmation', async () => {
    let cancelled = false;
    server.use(
      ...jobHandlers(job()),
      http.post('/api/jobs/42/cancel', () => {
        cancelled = true;
        return HttpResponse.json(job({ status: 'cancelled' }));
      }),
    );
    renderApp('/jobs/42');
    await userEvent.click(await screen.findByRole('button', { name: 'Cancel job' }));
    const dialog = screen.getByRole('dialog', { name: 'Cancel this job?' });
    expect(within(dialog).getByRole('button', { name: 'Keep' })).toHaveFocus();
    await userEvent.click(within(dialog).getByRole('button', { name: 'Cancel job' }));
    expect(await screen.findByText('The job is being cancelled.')).toBeInTheDocument();
    expect(cancelled).toBe(true);
  });

  it('explains a remote failure in plain words, keeps the server text, and retries', async () => {
    const failed = job({
      status: 'failed',
      error_message: 'Remote error: 401 Unauthorized',
      status_history: [
        { old_status: 'running', new_status: 'failed', message: 'Error: chromosome name chr20 not valid for hg19', occurred_at: '2026-11-20T09:05:00Z' },
      ],
    });
    server.use(
      ...jobHandlers(failed),
      http.post('/api/jobs/42/retry', () => HttpResponse.json(job({ id: 77, name: 'chr20 batch (retry)' }), { status: 201 })),
      http.get('/api/jobs/77', () => HttpResponse.json(job({ id: 77, name: 'chr20 batch (retry)' }))),
      http.get('/api/jobs/77/files', () => HttpResponse.json(page([]))),
    );
    renderApp('/jobs/42');
    expect(await screen.findByText('The imputation server refused the credentials. Check or renew your token for this service in Settings.')).toBeInTheDocument();
    expect(screen.getByText('The chromosome names do not match the build: hg19 expects no "chr" prefix, hg38 expects "chr".')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: "Show the server's message" }));
    expect(screen.getByText('Error: chromosome name chr20 not valid for hg19')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Retry' }));
    expect(await screen.findByRole('heading', { level: 1, name: 'chr20 batch (retry)' })).toBeInTheDocument();
  });

  it('lists result files with size and checksum, downloads one, and reveals the Michigan result password', async () => {
    const results = [{ id: 90, filename: 'chr_20.zip', size_bytes: 5 * 1024 * 1024, sha256: 'ab'.repeat(32) }];
    let downloaded = false;
    server.use(
      ...jobHandlers(job({ status: 'completed', progress: 100 }), results),
      http.get('/api/jobs/42/result-password', () => HttpResponse.json({ password: 'x7-Secret' })),
      http.get('/api/files/90/download', () => {
        downloaded = true;
        return new HttpResponse('zip', { headers: { 'Content-Type': 'application/zip' } });
      }),
    );
    URL.createObjectURL = () => 'blob:result';
    URL.revokeObjectURL = () => undefined;
    renderApp('/jobs/42');
    const table = await screen.findByRole('table', { name: 'Results' });
    expect(within(table).getByText('5.0 MB')).toBeInTheDocument();
    expect(within(table).getByText('ab'.repeat(32))).toBeInTheDocument();
    await userEvent.click(within(table).getByRole('button', { name: 'Download chr_20.zip' }));
    await waitFor(() => expect(downloaded).toBe(true));
    await userEvent.click(await screen.findByRole('button', { name: 'Reveal the result password' }));
    expect(await screen.findByText('x7-Secret')).toBeInTheDocument();
  });

  it('shows a missing job as an error', async () => {
    server.use(
      http.get('/api/jobs/404', () => apiError(404, 'job_not_found', 'No job 404.')),
      http.get('/api/jobs/404/files', () => HttpResponse.json(page([]))),
    );
    renderApp('/jobs/404');
    expect(await screen.findByRole('alert')).toHaveTextContent('No job 404.');
  });
});

describe('new job', () => {
  function newJobHandlers(uploadAnswer?: object) {
    return [
      http.get('/api/services', () => HttpResponse.json(page([michigan, ilifu]))),
      http.get('/api/users/7/permissions', () => HttpResponse.json(grants([1, 2]))),
      http.get('/api/services/1/panels', () => HttpResponse.json(page([panel1000g]))),
      http.post('/api/files/upload', () => HttpResponse.json(uploadAnswer ?? inputFile, { status: 201 })),
    ];
  }

  async function fillForm() {
    await userEvent.click(await screen.findByRole('combobox', { name: 'Service' }));
    const options = screen.getAllByRole('option');
    expect(options.map((o) => o.textContent)).toEqual(['Michigan Imputation Server', 'ILIFU WES (unhealthy)']);
    await userEvent.click(options[0]!);
    await userEvent.click(screen.getByRole('combobox', { name: 'Reference panel' }));
    await userEvent.click(await screen.findByRole('option', { name: '1000 Genomes Phase 3 (hg19)' }));
    await userEvent.click(screen.getByRole('combobox', { name: 'Population' }));
    expect(screen.getAllByRole('option').map((o) => o.textContent)).toEqual(['None (skip population checks)', 'AFR', 'EUR', 'ALL']);
    await userEvent.click(screen.getByRole('option', { name: 'EUR' }));
    await fill(screen.getByRole('textbox', { name: 'Job name' }), 'my chr20');
  }

  it('only offers the services I may use', async () => {
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([michigan, ilifu]))),
      http.get('/api/users/7/permissions', () => HttpResponse.json(grants([2]))),
    );
    renderApp('/jobs/new');
    await userEvent.click(await screen.findByRole('combobox', { name: 'Service' }));
    await waitFor(() => expect(screen.getAllByRole('option').map((o) => o.textContent)).toEqual(['ILIFU WES (unhealthy)']));
  });

  it('uploads a VCF, shows what the file manager found, and submits the job', async () => {
    let created: unknown;
    let key: string | null = null;
    server.use(
      ...newJobHandlers(),
      http.post('/api/jobs', async ({ request }) => {
        created = await request.json();
        key = request.headers.get('Idempotency-Key');
        return HttpResponse.json(job({ id: 42 }), { status: 201 });
      }),
      ...jobHandlers(job()),
    );
    renderApp('/jobs/new');
    await fillForm();
    await userEvent.upload(screen.getByLabelText('VCF files'), new File(['##fileformat=VCFv4.2'], 'chr20.vcf.gz'));
    expect(await screen.findByText(/50 samples · chromosomes 20 · build hint hg19 · unphased/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Submit job' }));
    expect(await screen.findByRole('heading', { level: 1, name: 'chr20 batch' })).toBeInTheDocument();
    expect(created).toEqual({
      name: 'my chr20',
      service_id: 1,
      reference_panel_id: 11,
      build: 'hg19',
      phasing: true,
      population: 'EUR',
      mode: 'imputation',
      r2_filter: 0,
      input_file_ids: ['5'],
      run_at: null,
    });
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('flags a multi-chromosome file for Michigan before submitting, and shows upload warnings', async () => {
    server.use(
      ...newJobHandlers({
        ...inputFile,
        vcf: { ...inputFile.vcf, chromosomes: ['20', '21'], warnings: ['Several chromosomes in one file.'] },
      }),
    );
    renderApp('/jobs/new');
    await fillForm();
    await userEvent.upload(screen.getByLabelText('VCF files'), new File(['x'], 'all.vcf.gz'));
    expect(await screen.findByText('Holds 2 chromosomes; Michigan servers take one chromosome per file.')).toBeInTheDocument();
    expect(screen.getByText('Several chromosomes in one file.')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Submit job' })).toBeDisabled();
  });

  it('shows a server pre-flight error against the field it names', async () => {
    server.use(
      ...newJobHandlers(),
      http.post('/api/jobs', () =>
        apiError(422, 'preflight_failed', 'This panel does not offer population EUR.', {
          problems: [{ code: 'population_unsupported', message: 'This panel does not offer population EUR.', file: null }],
        }),
      ),
    );
    renderApp('/jobs/new');
    await fillForm();
    await userEvent.upload(screen.getByLabelText('VCF files'), new File(['x'], 'chr20.vcf.gz'));
    await screen.findByText(/50 samples/);
    await userEvent.click(screen.getByRole('button', { name: 'Submit job' }));
    const population = await screen.findByRole('combobox', { name: 'Population' });
    await waitFor(() => expect(population).toHaveAccessibleDescription('This panel does not offer population EUR.'));
    expect(population).toHaveAttribute('aria-invalid', 'true');
  });

  it('shows a failed upload', async () => {
    // The handler given first wins in MSW, so the failing upload goes before the defaults.
    server.use(
      http.post('/api/files/upload', () => apiError(400, 'invalid_vcf', 'Line 3: the #CHROM header line is missing.')),
      ...newJobHandlers(),
    );
    renderApp('/jobs/new');
    await userEvent.upload(await screen.findByLabelText('VCF files'), new File(['x'], 'bad.vcf'));
    expect(await screen.findByText('Line 3: the #CHROM header line is missing.')).toBeInTheDocument();
  });

  it('says so when no service is registered', async () => {
    server.use(http.get('/api/services', () => HttpResponse.json(page([]))), http.get('/api/users/7/permissions', () => HttpResponse.json(grants([]))));
    renderApp('/jobs/new');
    expect(await screen.findByText('No imputation service is registered yet.')).toBeInTheDocument();
  });
});
