// The transport: every call to the gateway goes through `request`, which adds the access token, renews it once
// with the refresh token on a 401, and turns error bodies ({"error", "detail"}) into ApiError.
import type { TokenPair } from './types';

export const API_BASE = '/api';
const REFRESH_KEY = 'fi.refresh_token';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: unknown;

  constructor(status: number, code: string, detail: string, body: unknown) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** The field a 422 pre-flight or validation error concerns, when the service names one. */
  get field(): string | undefined {
    const body = this.body as { field?: unknown; detail?: unknown } | null;
    if (body && typeof body.field === 'string') return body.field;
    if (body && Array.isArray(body.detail)) {
      const loc = (body.detail[0] as { loc?: unknown[] } | undefined)?.loc;
      const last = Array.isArray(loc) ? loc[loc.length - 1] : undefined;
      return typeof last === 'string' ? last : undefined;
    }
    return undefined;
  }
}

/** A readable sentence for any error, for toasts and error states. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return 'Something went wrong.';
}

type SessionListener = (reason: 'expired' | 'signed-out' | 'renewed') => void;

// The access token lives in memory only; the refresh token in localStorage so a reload keeps the session.
let accessToken: string | null = null;
let refreshing: Promise<boolean> | null = null;
let renewTimer: ReturnType<typeof setTimeout> | undefined;
const listeners = new Set<SessionListener>();

export const session = {
  get accessToken(): string | null {
    return accessToken;
  },
  get refreshToken(): string | null {
    try {
      return localStorage.getItem(REFRESH_KEY);
    } catch {
      return null;
    }
  },
  /** Stores a new token pair and schedules its silent renewal a minute before the access token expires. */
  store(pair: TokenPair): void {
    accessToken = pair.access_token;
    try {
      localStorage.setItem(REFRESH_KEY, pair.refresh_token);
    } catch {
      // Private mode: the session lasts as long as the page.
    }
    clearTimeout(renewTimer);
    const renewInMs = Math.max(5, pair.expires_in - 60) * 1000;
    renewTimer = setTimeout(() => void renew(), renewInMs);
  },
  clear(reason: 'expired' | 'signed-out'): void {
    const had = accessToken !== null || this.refreshToken !== null;
    accessToken = null;
    clearTimeout(renewTimer);
    try {
      localStorage.removeItem(REFRESH_KEY);
    } catch {
      // nothing stored
    }
    if (had) listeners.forEach((listener) => listener(reason));
  },
  subscribe(listener: SessionListener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

async function parseBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toApiError(status: number, body: unknown): ApiError {
  const obj = (body ?? {}) as { error?: unknown; detail?: unknown; message?: unknown };
  const code = typeof obj.error === 'string' ? obj.error : `http_${status}`;
  let detail: string;
  if (typeof obj.detail === 'string') detail = obj.detail;
  else if (Array.isArray(obj.detail)) {
    detail = obj.detail
      .map((d: { msg?: string; loc?: unknown[] }) => [d.loc?.slice(1).join('.'), d.msg].filter(Boolean).join(': '))
      .join('; ');
  } else if (typeof obj.message === 'string') detail = obj.message;
  else if (status === 0) detail = 'The server could not be reached. Check your connection and try again.';
  else detail = `The server answered ${status}.`;
  return new ApiError(status, code, detail, body);
}

/** Renews the access token with the refresh token; one renewal at a time, shared by concurrent callers. */
export function renew(): Promise<boolean> {
  const refreshToken = session.refreshToken;
  if (!refreshToken) return Promise.resolve(false);
  refreshing ??= (async () => {
    try {
      const response = await fetch(`${API_BASE}/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      if (!response.ok) {
        session.clear('expired');
        return false;
      }
      session.store((await response.json()) as TokenPair);
      listeners.forEach((listener) => listener('renewed'));
      return true;
    } catch {
      // Offline: keep the refresh token, the next call tries again.
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | boolean | null | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Public endpoints (login, register, refresh) never try to renew the session. */
  anonymous?: boolean;
}

export function buildUrl(path: string, query?: RequestOptions['query']): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const qs = params.toString();
  return `${API_BASE}${path}${qs ? `?${qs}` : ''}`;
}

export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const send = (): Promise<Response> => {
    const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (accessToken && !options.anonymous) headers.Authorization = `Bearer ${accessToken}`;
    return fetch(buildUrl(path, options.query), {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  };
  let response: Response;
  try {
    response = await send();
    if (response.status === 401 && !options.anonymous && session.refreshToken) {
      if (await renew()) response = await send();
    }
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw toApiError(0, null);
  }
  const body = await parseBody(response);
  if (!response.ok) {
    if (response.status === 401 && !options.anonymous) session.clear('expired');
    throw toApiError(response.status, body);
  }
  return body as T;
}

export interface UploadHandle<T> {
  promise: Promise<T>;
  cancel: () => void;
}

/**
 * Uploads one file as multipart (field `file`) with progress, through XMLHttpRequest because fetch reports no
 * upload progress. The browser streams the file from disk; nothing is read whole into memory.
 */
export function upload<T>(path: string, file: File, onProgress: (fraction: number) => void): UploadHandle<T> {
  const xhr = new XMLHttpRequest();
  let retried = false;
  const promise = new Promise<T>((resolve, reject) => {
    const start = (): void => {
      xhr.open('POST', `${API_BASE}${path}`);
      if (accessToken) xhr.setRequestHeader('Authorization', `Bearer ${accessToken}`);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
      xhr.onload = () => {
        let body: unknown = null;
        try {
          body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          body = xhr.responseText;
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(body as T);
        } else if (xhr.status === 401 && !retried && session.refreshToken) {
          // A long upload may outlive the access token: renew once and send the file again.
          retried = true;
          void renew().then((ok) => (ok ? start() : reject(toApiError(401, body))));
        } else reject(toApiError(xhr.status, body));
      };
      xhr.onerror = () => reject(toApiError(0, null));
      xhr.onabort = () => reject(new DOMException('Upload cancelled', 'AbortError'));
      const form = new FormData();
      form.append('file', file, file.name);
      xhr.send(form);
    };
    start();
  });
  return { promise, cancel: () => xhr.abort() };
}

/**
 * Downloads a file with the session's token and hands it to the browser as a file. A plain link cannot carry
 * the Authorization header; the blob lives only until the browser has saved it.
 */
export async function download(path: string, filename: string): Promise<void> {
  const send = () =>
    fetch(`${API_BASE}${path}`, { headers: accessToken ? { Authorization: `Bearer ${accessToken}` } : {} });
  let response = await send();
  if (response.status === 401 && (await renew())) response = await send();
  if (!response.ok) throw toApiError(response.status, await parseBody(response));
  const url = URL.createObjectURL(await response.blob());
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = filename;
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** The WebSocket address for live notifications, on the page's own origin (the gateway or nginx proxies /ws/). */
export function notificationSocketUrl(): string | null {
  if (!accessToken) return null;
  const { protocol, host } = window.location;
  const scheme = protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${host}/ws/notifications?token=${encodeURIComponent(accessToken)}`;
}
