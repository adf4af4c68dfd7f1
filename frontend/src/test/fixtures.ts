import type { Dashboard, Job, Page, ReferencePanel, Service, User } from '../api';

export const researcher: User = { id: 7, username: 'ada', email: 'ada@example.org', roles: ['researcher'], is_active: true };
export const adminUser: User = { id: 1, username: 'root', email: 'root@example.org', roles: ['admin'], is_active: true };

export function page<T>(items: T[], total = items.length, pageNo = 1, pageSize = 20): Page<T> {
  return { items, total, page: pageNo, page_size: pageSize };
}

export const michigan: Service = {
  id: 1,
  name: 'Michigan Imputation Server',
  slug: 'michigan',
  api_type: 'michigan',
  base_url: 'https://imputationserver.sph.umich.edu',
  location: 'Ann Arbor',
  country_code: 'US',
  is_active: true,
  is_available: true,
  health_status: 'healthy',
  response_time_ms: 120,
  last_checked_at: '2026-11-20T10:00:00Z',
  supported_builds: ['hg19', 'hg38'],
};

export const ilifu: Service = {
  id: 2,
  name: 'ILIFU WES',
  slug: 'ilifu',
  api_type: 'ga4gh',
  base_url: 'https://wes.ilifu.ac.za',
  location: 'Cape Town',
  country_code: 'ZA',
  is_active: true,
  is_available: false,
  health_status: 'unhealthy',
  response_time_ms: null,
  last_checked_at: '2026-11-20T10:00:00Z',
  supported_builds: ['hg38'],
};

export const panel1000g: ReferencePanel = {
  id: 11,
  service_id: 1,
  panel_id: '1000g-phase-3-v5',
  name: '1000 Genomes Phase 3',
  build: 'hg19',
  populations: ['AFR', 'EUR', 'ALL'],
  samples_count: 2504,
  variants_count: 49143605,
  is_active: true,
};

export function job(overrides: Partial<Job> = {}): Job {
  return {
    id: '42',
    name: 'chr20 batch',
    status: 'running',
    service_id: 1,
    service_name: 'Michigan Imputation Server',
    reference_panel_id: 11,
    reference_panel_name: '1000 Genomes Phase 3',
    build: 'hg19',
    phasing: true,
    population: 'EUR',
    mode: 'imputation',
    r2_filter: 0,
    progress: 40,
    input_file_ids: ['5'],
    created_at: '2026-11-20T09:00:00Z',
    status_history: [
      { old_status: 'pending', new_status: 'queued', message: 'Queued', occurred_at: '2026-11-20T09:00:00Z' },
      { old_status: 'queued', new_status: 'running', message: 'Running on the remote server', occurred_at: '2026-11-20T09:01:00Z' },
    ],
    ...overrides,
  };
}

/** GET /api/dashboard as the gateway aggregates it. */
export function dashboardBody(overrides: Partial<Dashboard> = {}): Dashboard {
  return {
    job_stats: { total: 0, completed: 0, running: 0, failed: 0, success_rate: 0 },
    service_stats: { total: 0, available: 0, unavailable: 0, healthy: 0 },
    recent_jobs: [],
    notifications: { unread: 0 },
    unavailable: [],
    ...overrides,
  };
}
