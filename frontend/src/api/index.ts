// Every call the UI makes to the gateway, in one place, so it can be checked against GET /api/openapi.json.
import { download, request, session, upload } from './client';
import type {
  Alert,
  ApiToken,
  ApiTokenCreated,
  AuditEntry,
  Dashboard,
  DashboardStats,
  HealthCheck,
  Job,
  JobCreate,
  JobFile,
  JobStatus,
  JobTemplate,
  Notification,
  NotificationPreference,
  OverallHealth,
  Page,
  Permission,
  Permissions,
  ReferencePanel,
  Service,
  ServiceCredential,
  SystemMetrics,
  TokenPair,
  UploadedFile,
  User,
  Webhook,
} from './types';

export * from './types';
export { ApiError, errorMessage, session, renew, notificationSocketUrl } from './client';

export interface PageQuery {
  page?: number;
  page_size?: number;
}

export const auth = {
  async login(username: string, password: string): Promise<TokenPair> {
    const pair = await request<TokenPair>('/auth/login', {
      method: 'POST',
      body: { username, password },
      anonymous: true,
    });
    session.store(pair);
    return pair;
  },
  register(input: { username: string; email: string; password: string; first_name?: string; last_name?: string }): Promise<User> {
    return request<User>('/auth/register', { method: 'POST', body: input, anonymous: true });
  },
  async logout(): Promise<void> {
    const refresh_token = session.refreshToken;
    try {
      await request<void>('/auth/logout', { method: 'POST', body: { refresh_token } });
    } finally {
      session.clear('signed-out');
    }
  },
  me: (): Promise<User> => request<User>('/auth/user'),
  updateProfile: (input: { email?: string; first_name?: string; last_name?: string }): Promise<User> =>
    request<User>('/users/me', { method: 'PATCH', body: input }),
  /** Changing the password revokes the other sessions and answers with a fresh pair for this one. */
  async changePassword(current_password: string, new_password: string): Promise<void> {
    const pair = await request<TokenPair>('/auth/password', { method: 'POST', body: { current_password, new_password } });
    if (pair?.access_token) session.store(pair);
  },
};

export const tokens = {
  list: (): Promise<Page<ApiToken>> => request<Page<ApiToken>>('/tokens'),
  create: (name: string, expires_in_days: number | null): Promise<ApiTokenCreated> =>
    request<ApiTokenCreated>('/tokens', { method: 'POST', body: { name, expires_in_days } }),
  revoke: (id: number): Promise<void> => request<void>(`/tokens/${id}`, { method: 'DELETE' }),
};

export const credentials = {
  list: (): Promise<Page<ServiceCredential>> => request<Page<ServiceCredential>>('/users/me/service-credentials'),
  set: (service_id: number, token: string, expires_at: string | null): Promise<ServiceCredential> =>
    request<ServiceCredential>('/users/me/service-credentials', {
      method: 'POST',
      body: { service_id, token, expires_at },
    }),
  remove: (service_id: number): Promise<void> =>
    request<void>(`/users/me/service-credentials/${service_id}`, { method: 'DELETE' }),
};

export const services = {
  list: (query: PageQuery & { api_type?: string; search?: string } = {}): Promise<Page<Service>> =>
    request<Page<Service>>('/services', { query: { page_size: 100, ...query } }),
  get: (id: number | string): Promise<Service> => request<Service>(`/services/${id}`),
  panels: (id: number | string): Promise<Page<ReferencePanel>> =>
    request<Page<ReferencePanel>>(`/services/${id}/panels`, { query: { page_size: 100 } }),
  healthHistory: (id: number | string): Promise<Page<HealthCheck>> =>
    request<Page<HealthCheck>>(`/services/${id}/health/history`, { query: { page_size: 50 } }),
};

export const files = {
  upload: (file: File, onProgress: (fraction: number) => void) =>
    upload<UploadedFile>('/files/upload', file, onProgress),
  get: (id: number | string): Promise<UploadedFile> => request<UploadedFile>(`/files/${id}`),
  download: (id: number | string, filename: string): Promise<void> => download(`/files/${id}/download`, filename),
};

export interface BatchResult {
  batch_id: string;
  created: number;
  failed: number;
  results: { index: number; status_code: number; job: Job | null; error: string | null; detail: string | null }[];
}

export interface JobQuery extends PageQuery {
  status?: JobStatus | '';
  service_id?: number | '';
  search?: string;
  /** The server sorts the whole list: a field, descending with a leading '-'; ties go by id. */
  sort?: JobSort;
}

export const JOB_SORT_FIELDS = ['created_at', 'updated_at', 'name', 'status'] as const;
export type JobSortField = (typeof JOB_SORT_FIELDS)[number];
export type JobSort = JobSortField | `-${JobSortField}`;

export const jobs = {
  list: (query: JobQuery = {}): Promise<Page<Job>> => request<Page<Job>>('/jobs', { query: { ...query } }),
  get: (id: number | string): Promise<Job> => request<Job>(`/jobs/${id}`),
  create: (input: JobCreate, idempotencyKey: string): Promise<Job> =>
    request<Job>('/jobs', { method: 'POST', body: input, headers: { 'Idempotency-Key': idempotencyKey } }),
  multiService: (
    input: Omit<JobCreate, 'service_id' | 'reference_panel_id'> & {
      targets: { service_id: number; reference_panel_id: number }[];
    },
    idempotencyKey: string,
  ): Promise<BatchResult> =>
    request<BatchResult>('/jobs/multi-service', {
      method: 'POST',
      body: input,
      headers: { 'Idempotency-Key': idempotencyKey },
    }),
  cancel: (id: number | string): Promise<Job> => request<Job>(`/jobs/${id}/cancel`, { method: 'POST' }),
  retry: (id: number | string): Promise<Job> => request<Job>(`/jobs/${id}/retry`, { method: 'POST' }),
  files: (id: number | string): Promise<Page<JobFile>> => request<Page<JobFile>>(`/jobs/${id}/files`),
  resultPassword: (id: number | string): Promise<{ job_id: string; password: string }> =>
    request<{ job_id: string; password: string }>(`/jobs/${id}/result-password`),
};

export const templates = {
  list: (): Promise<Page<JobTemplate>> => request<Page<JobTemplate>>('/templates'),
  create: (input: Omit<JobTemplate, 'id'>): Promise<JobTemplate> =>
    request<JobTemplate>('/templates', { method: 'POST', body: input }),
};

export const notifications = {
  list: (query: PageQuery & { unread?: boolean } = {}): Promise<Page<Notification>> =>
    request<Page<Notification>>('/notifications', { query: { ...query } }),
  unreadCount: (): Promise<{ unread: number }> => request<{ unread: number }>('/notifications/unread-count'),
  markRead: (id: number): Promise<void> => request<void>(`/notifications/${id}/read`, { method: 'POST' }),
  markAllRead: (): Promise<void> => request<void>('/notifications/read-all', { method: 'POST' }),
  preferences: (): Promise<{ preferences: NotificationPreference[] }> =>
    request<{ preferences: NotificationPreference[] }>('/notifications/preferences'),
  savePreferences: (items: NotificationPreference[]): Promise<{ preferences: NotificationPreference[] }> =>
    request<{ preferences: NotificationPreference[] }>('/notifications/preferences', {
      method: 'PUT',
      body: {
        preferences: Object.fromEntries(
          items.map((p) => [p.event_type, { in_app: p.in_app, email: p.email, webhook: p.webhook }]),
        ),
      },
    }),
  webhooks: (): Promise<Page<Webhook>> => request<Page<Webhook>>('/notifications/webhooks'),
  createWebhook: (url: string): Promise<Webhook> =>
    request<Webhook>('/notifications/webhooks', { method: 'POST', body: { url } }),
  deleteWebhook: (id: number): Promise<void> =>
    request<void>(`/notifications/webhooks/${id}`, { method: 'DELETE' }),
};

export const admin = {
  users: (query: PageQuery & { search?: string } = {}): Promise<Page<User>> =>
    request<Page<User>>('/users', { query: { ...query } }),
  updateUser: (id: number, input: { roles?: string[] }): Promise<User> =>
    request<User>(`/users/${id}`, { method: 'PATCH', body: input }),
  deactivate: (id: number): Promise<User> => request<User>(`/users/${id}/deactivate`, { method: 'POST' }),
  permissions: (id: number): Promise<Permissions> => request<Permissions>(`/users/${id}/permissions`),
  grant: (id: number, service_id: number, monthly_quota: number | null): Promise<Permission> =>
    request<Permission>(`/users/${id}/permissions`, { method: 'POST', body: { service_id, monthly_quota } }),
  /** Change the monthly job quota of a direct grant (null: no limit). */
  setQuota: (id: number, service_id: number, monthly_quota: number | null): Promise<Permission> =>
    request<Permission>(`/users/${id}/permissions/${service_id}`, { method: 'PATCH', body: { monthly_quota } }),
  revoke: (id: number, service_id: number): Promise<void> =>
    request<void>(`/users/${id}/permissions/${service_id}`, { method: 'DELETE' }),
  audit: (query: PageQuery & { action?: string } = {}): Promise<Page<AuditEntry>> =>
    request<Page<AuditEntry>>('/audit', { query: { ...query } }),
};

export const monitoring = {
  overall: (): Promise<OverallHealth> => request<OverallHealth>('/monitoring/health/overall'),
  alerts: (): Promise<Page<Alert>> => request<Page<Alert>>('/monitoring/alerts'),
  acknowledge: (id: number): Promise<Alert> =>
    request<Alert>(`/monitoring/alerts/${id}/acknowledge`, { method: 'POST' }),
  system: (): Promise<SystemMetrics> => request<SystemMetrics>('/monitoring/metrics/system'),
  stats: (): Promise<DashboardStats> => request<DashboardStats>('/monitoring/dashboard/stats'),
};

export const dashboard = {
  get: (): Promise<Dashboard> => request<Dashboard>('/dashboard'),
};

/** Lists come as pages or, from a few older endpoints, as plain arrays. */
export function itemsOf<T>(value: Page<T> | T[] | { items: T[] } | null | undefined): T[] {
  if (!value) return [];
  return Array.isArray(value) ? value : value.items;
}
