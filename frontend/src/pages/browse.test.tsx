import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { delay, http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { dashboardBody, ilifu, job, michigan, page, panel1000g } from '../test/fixtures';
import { renderApp } from '../test/render';
import { apiError, notificationSocket, server } from '../test/server';

describe('dashboard', () => {
  it('shows my jobs by status, recent jobs, services with health and unread notifications', async () => {
    server.use(
      http.get('/api/dashboard', () =>
        HttpResponse.json(
          dashboardBody({
            job_stats: { total: 8, running: 2, completed: 5, failed: 1, success_rate: 83.3 },
            recent_jobs: [job()],
            notifications: { unread: 3 },
          }),
        ),
      ),
      http.get('/api/services', () => HttpResponse.json(page([michigan, ilifu]))),
    );
    renderApp('/');
    expect(screen.getByRole('status', { name: 'Restoring your session' })).toBeInTheDocument();
    const byStatus = await screen.findByRole('region', { name: 'My jobs by status' });
    expect(within(byStatus).getByRole('link', { name: 'running' })).toHaveAttribute('href', '/jobs?status=running');
    expect(within(byStatus).getByText('5')).toBeInTheDocument();
    expect(within(byStatus).getByText('8')).toBeInTheDocument();
    expect(within(screen.getByRole('table', { name: 'Recent jobs' })).getByRole('link', { name: 'chr20 batch' })).toHaveAttribute('href', '/jobs/42');
    const services = screen.getByRole('list', { name: 'Services and their health' });
    expect(within(services).getByText('Unhealthy')).toBeInTheDocument();
    expect(within(services).getByText('120 ms')).toBeInTheDocument();
    expect(screen.getByText(/3 unread/)).toBeInTheDocument();
  });

  it('invites a new user to submit a first job', async () => {
    server.use(http.get('/api/dashboard', () => HttpResponse.json(dashboardBody())));
    renderApp('/');
    expect(await screen.findByRole('link', { name: 'Submit your first job' })).toHaveAttribute('href', '/jobs/new');
    expect(screen.getByText('No services registered.')).toBeInTheDocument();
  });

  it('shows the gateway error and retries', async () => {
    let calls = 0;
    server.use(
      http.get('/api/dashboard', () =>
        ++calls === 1
          ? apiError(503, 'upstream_unavailable', 'The job processor is unavailable.')
          : HttpResponse.json(dashboardBody({ job_stats: { total: 1, completed: 1, running: 0, failed: 0 } })),
      ),
    );
    renderApp('/');
    expect(await screen.findByRole('alert')).toHaveTextContent('The job processor is unavailable.');
    await userEvent.click(screen.getByRole('button', { name: 'Try again' }));
    expect(await screen.findByRole('link', { name: 'completed' })).toBeInTheDocument();
  });

  it('counts a notification pushed over the WebSocket on the bell', async () => {
    server.use(
      http.get('/api/dashboard', () => HttpResponse.json(dashboardBody())),
      http.get('/api/notifications/unread-count', () => HttpResponse.json({ unread: 2 })),
    );
    renderApp('/');
    expect(await screen.findByRole('link', { name: 'Notifications, 2 unread' })).toBeInTheDocument();
    await waitFor(() => expect(notificationSocket.clients.size).toBeGreaterThan(0));
    notificationSocket.broadcast(
      JSON.stringify({ type: 'notification', notification: { id: 9, type: 'job.completed', title: 'Job chr20 batch completed', message: 'Done', is_read: false, created_at: '2026-11-20T10:00:00Z' } }),
    );
    expect(await screen.findByRole('link', { name: 'Notifications, 3 unread' })).toBeInTheDocument();
    expect(await screen.findByText('Job chr20 batch completed')).toBeInTheDocument();
  });

  it('fetches the unread count again when the server says pushes were missed', async () => {
    let unread = 2;
    server.use(
      http.get('/api/dashboard', () => HttpResponse.json(dashboardBody())),
      http.get('/api/notifications/unread-count', () => HttpResponse.json({ unread })),
    );
    renderApp('/');
    expect(await screen.findByRole('link', { name: 'Notifications, 2 unread' })).toBeInTheDocument();
    await waitFor(() => expect(notificationSocket.clients.size).toBeGreaterThan(0));
    unread = 5;
    notificationSocket.broadcast(JSON.stringify({ type: 'resync' }));
    expect(await screen.findByRole('link', { name: 'Notifications, 5 unread' })).toBeInTheDocument();
  });
});

describe('services', () => {
  it('lists services with health, response time, country and type, and filters them', async () => {
    server.use(http.get('/api/services', () => HttpResponse.json(page([michigan, ilifu]))));
    renderApp('/services');
    const table = await screen.findByRole('table', { name: 'Imputation services' });
    expect(within(table).getAllByRole('row')).toHaveLength(3);
    expect(within(table).getByText('Ann Arbor, US')).toBeInTheDocument();
    expect(within(table).getByText('120 ms')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('combobox', { name: 'Health' }));
    await userEvent.click(screen.getByRole('option', { name: 'Unhealthy' }));
    expect(within(table).getAllByRole('row')).toHaveLength(2);
    expect(within(table).getByRole('link', { name: 'ILIFU WES' })).toHaveAttribute('href', '/services/2');
  });

  it('has an empty state and an error state', async () => {
    server.use(http.get('/api/services', () => HttpResponse.json(page([]))));
    const { unmount } = renderApp('/services');
    expect(await screen.findByText('No services are registered yet.')).toBeInTheDocument();
    unmount();
    server.use(http.get('/api/services', () => apiError(502, 'upstream_error', 'The service registry answered badly.')));
    renderApp('/services');
    expect(await screen.findByRole('alert')).toHaveTextContent('The service registry answered badly.');
  });

  it('shows a service with its panels and a chart of recent health', async () => {
    server.use(
      http.get('/api/services/1', () => HttpResponse.json(michigan)),
      http.get('/api/services/1/panels', () => HttpResponse.json(page([panel1000g]))),
      http.get('/api/services/1/health/history', () =>
        HttpResponse.json(
          page([
            { status: 'healthy', response_time_ms: 100, checked_at: '2026-11-20T09:00:00Z' },
            { status: 'unhealthy', response_time_ms: null, error_message: 'timeout', checked_at: '2026-11-20T09:05:00Z' },
            { status: 'healthy', response_time_ms: 300, checked_at: '2026-11-20T09:10:00Z' },
          ]),
        ),
      ),
    );
    renderApp('/services/1');
    expect(await screen.findByRole('heading', { level: 1, name: 'Michigan Imputation Server' })).toBeInTheDocument();
    const panels = await screen.findByRole('table', { name: 'Reference panels' });
    expect(within(panels).getByText('AFR, EUR, ALL')).toBeInTheDocument();
    expect(within(panels).getByText((2504).toLocaleString())).toBeInTheDocument();
    expect(await screen.findByRole('img', { name: 'Response time of recent health checks: 3 checks, 1 failed, slowest 300 ms.' })).toBeInTheDocument();
  });

  it('says when a service has no panels and no health history', async () => {
    server.use(
      http.get('/api/services/2', () => HttpResponse.json(ilifu)),
      http.get('/api/services/2/panels', () => HttpResponse.json(page([]))),
      http.get('/api/services/2/health/history', () => HttpResponse.json(page([]))),
    );
    renderApp('/services/2');
    expect(await screen.findByText('This service has no reference panels.')).toBeInTheDocument();
    expect(await screen.findByText('No health checks recorded yet.')).toBeInTheDocument();
  });
});

describe('jobs', () => {
  it('lists jobs and filters by status through the API', async () => {
    const queries: string[] = [];
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([michigan]))),
      http.get('/api/jobs', ({ request }) => {
        const url = new URL(request.url);
        queries.push(url.search);
        const status = url.searchParams.get('status');
        return HttpResponse.json(status === 'failed' ? page([job({ id: 43, name: 'broken', status: 'failed' })]) : page([job()], 1));
      }),
    );
    renderApp('/jobs');
    const table = await screen.findByRole('table', { name: 'Jobs' });
    expect(within(table).getByRole('link', { name: 'chr20 batch' })).toHaveAttribute('href', '/jobs/42');
    expect(queries[0]).toBe('?page=1&page_size=20&sort=-created_at');
    await userEvent.click(screen.getByRole('combobox', { name: 'Status' }));
    await userEvent.click(screen.getByRole('option', { name: 'failed' }));
    expect(await screen.findByRole('link', { name: 'broken' })).toBeInTheDocument();
    expect(queries.at(-1)).toBe('?status=failed&page=1&page_size=20&sort=-created_at');
    expect(screen.getByTestId('location')).toHaveTextContent('/jobs?status=failed');
  });

  it('asks the server to sort the whole list by the clicked column and shows its order as it is', async () => {
    const queries: string[] = [];
    const alpha = job({ id: 1, name: 'alpha', status: 'running' });
    const beta = job({ id: 2, name: 'beta', status: 'completed' });
    const gamma = job({ id: 3, name: 'gamma', status: 'failed' });
    // The server's answer per sort: the page shows these rows in this order, without sorting them again.
    const answers: Record<string, ReturnType<typeof job>[]> = {
      '-created_at': [gamma, alpha, beta],
      name: [alpha, beta, gamma],
      '-name': [gamma, beta, alpha],
    };
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([]))),
      http.get('/api/jobs', ({ request }) => {
        const url = new URL(request.url);
        queries.push(url.search);
        const sort = url.searchParams.get('sort') ?? '';
        if (!answers[sort]) return apiError(400, 'bad_request', `Cannot sort jobs by '${sort}'.`);
        return HttpResponse.json(page(answers[sort] ?? [], 3));
      }),
    );
    const names = async (expected: string[]) =>
      waitFor(() =>
        expect(
          within(screen.getByRole('table', { name: 'Jobs' }))
            .getAllByRole('link')
            .map((a) => a.textContent),
        ).toEqual(expected),
      );
    renderApp('/jobs');
    await screen.findByRole('table', { name: 'Jobs' });
    await names(['gamma', 'alpha', 'beta']);
    expect(queries).toEqual(['?page=1&page_size=20&sort=-created_at']);

    await userEvent.click(screen.getByRole('button', { name: 'Name' }));
    await names(['alpha', 'beta', 'gamma']);
    expect(queries.at(-1)).toBe('?page=1&page_size=20&sort=name');
    expect(screen.getByTestId('location')).toHaveTextContent('/jobs?sort=name&order=asc');

    await userEvent.click(screen.getByRole('button', { name: 'Name' }));
    await names(['gamma', 'beta', 'alpha']);
    expect(queries.at(-1)).toBe('?page=1&page_size=20&sort=-name');
  });

  it('falls back to newest first when the address names a column the server cannot sort by', async () => {
    const queries: string[] = [];
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([]))),
      http.get('/api/jobs', ({ request }) => {
        queries.push(new URL(request.url).search);
        return HttpResponse.json(page([job()]));
      }),
    );
    renderApp('/jobs?sort=owner&order=sideways');
    await screen.findByRole('table', { name: 'Jobs' });
    expect(queries).toEqual(['?page=1&page_size=20&sort=-created_at']);
  });

  it('has an empty state for a new user and for filters', async () => {
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([]))),
      http.get('/api/jobs', () => HttpResponse.json(page([]))),
    );
    const { unmount } = renderApp('/jobs');
    expect(await screen.findByText('You have no jobs yet.')).toBeInTheDocument();
    unmount();
    renderApp('/jobs?status=failed');
    expect(await screen.findByText('No job matches these filters.')).toBeInTheDocument();
  });

  it('shows an error state', async () => {
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([]))),
      http.get('/api/jobs', () => apiError(504, 'upstream_timeout', 'The job processor did not answer in time.')),
    );
    renderApp('/jobs');
    expect(await screen.findByRole('alert')).toHaveTextContent('The job processor did not answer in time.');
  });
});

describe('loading states', () => {
  it.each([
    ['/', '/api/dashboard', 'Loading dashboard'],
    ['/services', '/api/services', 'Loading services'],
    ['/jobs', '/api/jobs', 'Loading jobs'],
  ])('%s shows a busy skeleton until %s answers', async (path, api, label) => {
    server.use(
      http.get('/api/services', () => HttpResponse.json(page([]))),
      http.get(api, async () => {
        await delay('infinite');
        return HttpResponse.json({});
      }),
    );
    renderApp(path);
    expect(await screen.findByRole('status', { name: label })).toHaveAttribute('aria-busy', 'true');
  });
});
