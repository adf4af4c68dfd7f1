import { http, HttpResponse } from 'msw';
import { describe, expect, it, vi } from 'vitest';
import { ApiError, auth, jobs, session } from '.';
import { server, apiError } from '../test/server';
import { job, page } from '../test/fixtures';

const pair = (n: number) => ({
  access_token: `access-${n}`,
  refresh_token: `refresh-${n}`,
  token_type: 'bearer',
  expires_in: 900,
});

describe('api client', () => {
  it('sends the access token and query parameters', async () => {
    session.store(pair(1));
    let seen: { auth: string | null; url: string } | undefined;
    server.use(
      http.get('/api/jobs', ({ request }) => {
        seen = { auth: request.headers.get('Authorization'), url: request.url };
        return HttpResponse.json(page([job()]));
      }),
    );
    const result = await jobs.list({ status: 'running', search: '', page: 2 });
    expect(result.items[0]?.name).toBe('chr20 batch');
    expect(seen?.auth).toBe('Bearer access-1');
    expect(new URL(seen!.url).search).toBe('?status=running&page=2');
  });

  it('renews the access token once on 401 and retries, sharing one refresh between concurrent calls', async () => {
    session.store(pair(1));
    const refreshes: string[] = [];
    server.use(
      http.get('/api/jobs/:id', ({ request }) =>
        request.headers.get('Authorization') === 'Bearer access-2'
          ? HttpResponse.json(job())
          : apiError(401, 'token_expired', 'The access token has expired.'),
      ),
      http.post('/api/auth/refresh', async ({ request }) => {
        refreshes.push(((await request.json()) as { refresh_token: string }).refresh_token);
        return HttpResponse.json(pair(2));
      }),
    );
    const [a, b] = await Promise.all([jobs.get(42), jobs.get(43)]);
    expect(a.id).toBe('42');
    expect(b.id).toBe('42');
    expect(refreshes).toEqual(['refresh-1']);
    expect(session.accessToken).toBe('access-2');
    expect(session.refreshToken).toBe('refresh-2');
  });

  it('ends the session and tells listeners when the refresh token is refused', async () => {
    session.store(pair(1));
    const listener = vi.fn();
    const unsubscribe = session.subscribe(listener);
    server.use(
      http.get('/api/jobs/:id', () => apiError(401, 'token_expired', 'expired')),
      http.post('/api/auth/refresh', () => apiError(401, 'refresh_token_reused', 'The refresh token was already used.')),
    );
    await expect(jobs.get(1)).rejects.toBeInstanceOf(ApiError);
    expect(listener).toHaveBeenCalledWith('expired');
    expect(session.accessToken).toBeNull();
    expect(session.refreshToken).toBeNull();
    unsubscribe();
  });

  it('turns error bodies into ApiError with code, sentence and field', async () => {
    server.use(
      http.post('/api/jobs', () =>
        apiError(422, 'preflight_failed', 'hg38 needs the chr prefix.', { field: 'build' }),
      ),
    );
    const error = await jobs
      .create(
        { name: 'x', service_id: 1, reference_panel_id: 2, build: 'hg38', phasing: true, population: null, mode: 'imputation', r2_filter: 0, input_file_ids: [1] },
        'key-1',
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(422);
    expect((error as ApiError).code).toBe('preflight_failed');
    expect((error as ApiError).message).toBe('hg38 needs the chr prefix.');
    expect((error as ApiError).field).toBe('build');
  });

  it('sends the Idempotency-Key header when creating a job', async () => {
    let key: string | null = null;
    server.use(
      http.post('/api/jobs', ({ request }) => {
        key = request.headers.get('Idempotency-Key');
        return HttpResponse.json(job(), { status: 201 });
      }),
    );
    await jobs.create(
      { name: 'x', service_id: 1, reference_panel_id: 2, build: 'hg19', phasing: true, population: null, mode: 'imputation', r2_filter: 0, input_file_ids: [1] },
      'abc-123',
    );
    expect(key).toBe('abc-123');
  });

  it('logs in without a token, stores the pair, and logs out with the refresh token', async () => {
    let loginAuth: string | null = 'unset';
    let logoutBody: unknown;
    server.use(
      http.post('/api/auth/login', ({ request }) => {
        loginAuth = request.headers.get('Authorization');
        return HttpResponse.json(pair(5));
      }),
      http.post('/api/auth/logout', async ({ request }) => {
        logoutBody = await request.json();
        return new HttpResponse(null, { status: 204 });
      }),
    );
    await auth.login('ada', 'pw');
    expect(loginAuth).toBeNull();
    expect(session.accessToken).toBe('access-5');
    await auth.logout();
    expect(logoutBody).toEqual({ refresh_token: 'refresh-5' });
    expect(session.refreshToken).toBeNull();
  });

  it('reports an unreachable server in words', async () => {
    server.use(http.get('/api/jobs', () => HttpResponse.error()));
    await expect(jobs.list()).rejects.toThrow('The server could not be reached. Check your connection and try again.');
  });
});
