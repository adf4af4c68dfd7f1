// Shapes of the gateway's public API (DESIGN.md, "The public API"). Fields the UI does not need are left out;
// optional ones are those the services may not send yet. Check against GET /api/openapi.json when it lands.

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

export type Role = 'researcher' | 'service_admin' | 'admin';

export interface User {
  id: number;
  username: string;
  email: string;
  first_name?: string;
  last_name?: string;
  roles: Role[];
  is_active?: boolean;
  created_at?: string;
  last_login_at?: string | null;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
  user?: User;
}

export interface ApiToken {
  id: number;
  name: string;
  token_prefix?: string;
  revoked_at?: string | null;
  created_at: string;
  expires_at?: string | null;
  last_used_at?: string | null;
}

export interface ApiTokenCreated extends ApiToken {
  token: string;
}

export interface ServiceCredential {
  service_id: number;
  has_token?: boolean;
  expires_at?: string | null;
  expires_soon?: boolean;
  expired?: boolean;
  warning?: string | null;
  updated_at?: string;
}

export type HealthStatus = 'healthy' | 'unhealthy' | 'degraded' | 'unknown' | string;

export interface Service {
  id: number;
  name: string;
  slug: string;
  api_type: string;
  base_url: string;
  location?: string | null;
  country_code?: string | null;
  description?: string | null;
  is_active: boolean;
  is_available: boolean;
  health_status: HealthStatus;
  response_time_ms?: number | null;
  last_checked_at?: string | null;
  supported_builds?: string[];
}

export interface ReferencePanel {
  id: number;
  service_id: number;
  panel_id: string;
  name: string;
  build: string;
  populations: string[];
  samples_count?: number | null;
  variants_count?: number | null;
  is_active: boolean;
}

export interface HealthCheck {
  status: HealthStatus;
  response_time_ms?: number | null;
  error_message?: string | null;
  checked_at: string;
}

export interface VcfInfo {
  sample_count: number;
  chromosomes: string[];
  build_hint?: string | null;
  phased?: boolean | null;
  warnings: string[];
}

export interface UploadedFile {
  id: number | string;
  filename: string;
  size_bytes: number;
  sha256: string;
  vcf?: VcfInfo | null;
}

export type JobStatus =
  | 'pending'
  | 'queued'
  | 'submitting'
  | 'running'
  | 'downloading'
  | 'completed'
  | 'failed'
  | 'cancelled';

export const JOB_STATUSES: JobStatus[] = [
  'pending',
  'queued',
  'submitting',
  'running',
  'downloading',
  'completed',
  'failed',
  'cancelled',
];

export const LIVE_STATUSES: JobStatus[] = ['pending', 'queued', 'submitting', 'running', 'downloading'];

export interface StatusChange {
  old_status?: JobStatus | null;
  new_status: JobStatus;
  message?: string | null;
  occurred_at: string;
}

export interface ResultFile {
  name: string;
  file_id: string;
  size_bytes: number;
  sha256: string;
}

export interface Job {
  id: number | string;
  name: string;
  status: JobStatus;
  service_id: number;
  service_name?: string | null;
  api_type?: string;
  reference_panel_id: number;
  reference_panel_name?: string | null;
  build: string;
  phasing: boolean;
  population?: string | null;
  mode: string;
  r2_filter?: number | null;
  progress?: number | null;
  status_message?: string | null;
  error_message?: string | null;
  input_file_ids?: (number | string)[];
  remote_job_id?: string | null;
  result_files?: ResultFile[];
  has_result_password?: boolean;
  created_at: string;
  updated_at?: string | null;
  completed_at?: string | null;
  status_history?: StatusChange[];
}

export interface JobCreate {
  name: string;
  service_id: number;
  reference_panel_id: number;
  build: string;
  phasing: boolean;
  population: string | null;
  mode: string;
  r2_filter: number | null;
  input_file_ids: (number | string)[];
  run_at?: string | null;
}

export interface JobFile {
  id: number | string;
  filename: string;
  size_bytes: number;
  sha256?: string | null;
  kind?: string;
  expires_at?: string | null;
}

export interface JobTemplate {
  id: number;
  name: string;
  service_id: number;
  reference_panel_id: number;
  build?: string;
  phasing?: boolean;
  population?: string | null;
  mode?: string;
  r2_filter?: number | null;
}

export interface Notification {
  id: number;
  type: string;
  title: string;
  message: string;
  link?: string | null;
  is_read: boolean;
  created_at: string;
}

export const CHANNELS = ['in_app', 'email', 'webhook'] as const;
export type Channel = (typeof CHANNELS)[number];

export interface NotificationPreference {
  event_type: string;
  in_app: boolean;
  email: boolean;
  webhook: boolean;
  is_default?: boolean;
}

export interface Webhook {
  id: number;
  url: string;
  event_types?: string[];
  is_active?: boolean;
  created_at?: string;
  secret?: string;
}

export interface ComponentHealth {
  service_name: string;
  status: HealthStatus;
  response_time_ms?: number | null;
  checked_at?: string | null;
  error?: string | null;
}

export interface OverallHealth {
  overall_status: HealthStatus;
  services: ComponentHealth[];
  active_alerts?: number;
}

export interface Alert {
  id: number;
  subject?: string;
  severity: string;
  title: string;
  message: string;
  status: string;
  opened_at: string;
  acknowledged_at?: string | null;
}

export interface SystemMetrics {
  cpu_percent: number;
  memory_percent: number;
  disk_percent: number;
  [key: string]: unknown;
}

export interface PeriodStats {
  jobs_by_status: Record<string, number>;
  total_jobs: number;
  completed: number;
  failed: number;
  success_rate: number | null;
  per_service: { service_id: number; jobs: number; completed: number; failed: number; success_rate: number | null }[];
  active_users: number;
  uploads: number;
  upload_bytes?: number;
}

export interface DashboardStats {
  day: PeriodStats;
  week: PeriodStats;
  month: PeriodStats;
  generated_at?: string;
}

export interface Dashboard {
  job_stats?: { total: number; completed: number; running: number; failed: number; success_rate?: number };
  service_stats?: { total: number; available: number; unavailable: number; healthy: number };
  recent_jobs?: Job[];
  notifications?: { unread?: number } | null;
  /** Parts of the page whose service did not answer. */
  unavailable?: string[];
}

export interface Permission {
  service_id: number;
  monthly_quota?: number | null;
  via?: string;
}

export interface Permissions {
  user_id: number;
  roles: string[];
  services: Permission[];
  all_services: boolean;
}

export interface AuditEntry {
  id: number;
  action: string;
  user_id?: number | null;
  actor?: string | null;
  target_type?: string | null;
  target_id?: string | null;
  success?: boolean;
  ip_address?: string | null;
  created_at: string;
  details?: Record<string, unknown> | null;
}
