import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { adminUser, dashboardBody, ilifu, michigan, page, researcher } from '../test/fixtures';
import { renderApp } from '../test/render';
import { apiError, server } from '../test/server';

const period = (jobs: number) => ({
  jobs_by_status: jobs ? { completed: 8, failed: 2 } : {},
  total_jobs: jobs,
  completed: jobs ? 8 : 0,
  failed: jobs ? 2 : 0,
  success_rate: jobs ? 80 : null,
  per_service: jobs ? [{ service_id: 1, jobs, completed: 8, failed: 2, success_rate: 80 }] : [],
  active_users: 4,
  uploads: 3,
  upload_bytes: 100,
});

describe('admin', () => {
  it('keeps researchers out of admin pages', async () => {
    server.use(http.get('/api/dashboard', () => HttpResponse.json(dashboardBody())));
    renderApp('/admin/users', researcher);
    expect(await screen.findByRole('heading', { level: 1, name: 'Dashboard' })).toBeInTheDocument();
  });

  it('lists users and deactivates one after confirmation', async () => {
    let deactivated = false;
    server.use(
      http.get('/api/users', () => HttpResponse.json(page([adminUser, researcher]))),
      http.post('/api/users/7/deactivate', () => {
        deactivated = true;
        return HttpResponse.json({ ...researcher, is_active: false });
      }),
    );
    renderApp('/admin/users', adminUser);
    const table = await screen.findByRole('table', { name: 'Users' });
    expect(within(table).getAllByRole('row')).toHaveLength(3);
    await userEvent.click(within(table).getByRole('button', { name: 'Deactivate ada' }));
    await userEvent.click(within(screen.getByRole('dialog', { name: 'Deactivate ada?' })).getByRole('button', { name: 'Deactivate' }));
    expect(await screen.findByText('ada was deactivated.')).toBeInTheDocument();
    expect(deactivated).toBe(true);
  });

  it("changes the monthly quota of a user's grant in place, refusing a negative one", async () => {
    const patches: unknown[] = [];
    let grants = [
      { service_id: 1, monthly_quota: 10, via: 'user' },
      { service_id: 2, monthly_quota: 50, via: 'group:H3A' },
    ];
    server.use(
      http.get('/api/users', () => HttpResponse.json(page([adminUser, researcher]))),
      http.get('/api/services', () => HttpResponse.json(page([michigan, ilifu]))),
      http.get('/api/users/7/permissions', () => HttpResponse.json({ user_id: 7, roles: ['researcher'], services: grants, all_services: false })),
      http.patch('/api/users/7/permissions/1', async ({ request }) => {
        const body = (await request.json()) as { monthly_quota: number | null };
        patches.push(body);
        grants = grants.map((g) => (g.service_id === 1 ? { ...g, monthly_quota: body.monthly_quota as number } : g));
        return HttpResponse.json({ service_id: 1, monthly_quota: body.monthly_quota, created_at: '2026-11-20T10:00:00Z' });
      }),
    );
    renderApp('/admin/users', adminUser);
    await userEvent.click(await screen.findByRole('button', { name: 'Service permissions of ada' }));
    const dialog = await screen.findByRole('dialog', { name: 'Service permissions of ada' });
    const list = await within(dialog).findByRole('list', { name: 'Granted services' });
    expect(within(list).getByText('10 jobs a month')).toBeInTheDocument();
    // A grant through a group is changed on the group, not here.
    expect(within(list).queryByRole('button', { name: `Change the quota of ${ilifu.name}` })).not.toBeInTheDocument();

    await userEvent.click(within(list).getByRole('button', { name: `Change the quota of ${michigan.name}` }));
    const field = within(list).getByRole('spinbutton', { name: `Monthly job quota of ${michigan.name}` });
    expect(field).toHaveValue(10);
    await userEvent.clear(field);
    await userEvent.type(field, '-3');
    expect(within(list).getByText('A whole number, 0 or more')).toBeInTheDocument();
    expect(within(list).getByRole('button', { name: 'Save quota' })).toBeDisabled();
    expect(patches).toEqual([]);

    await userEvent.clear(field);
    await userEvent.type(field, '25');
    await userEvent.click(within(list).getByRole('button', { name: 'Save quota' }));
    expect(await screen.findByText(`Quota of ${michigan.name} set to 25 jobs a month.`)).toBeInTheDocument();
    expect(await within(list).findByText('25 jobs a month')).toBeInTheDocument();
    expect(within(list).queryByRole('spinbutton')).not.toBeInTheDocument();

    // Emptied, the field means no limit: null is sent.
    await userEvent.click(within(list).getByRole('button', { name: `Change the quota of ${michigan.name}` }));
    await userEvent.clear(within(list).getByRole('spinbutton', { name: `Monthly job quota of ${michigan.name}` }));
    await userEvent.click(within(list).getByRole('button', { name: 'Save quota' }));
    expect(await within(list).findByText('no quota')).toBeInTheDocument();
    expect(patches).toEqual([{ monthly_quota: 25 }, { monthly_quota: null }]);
  });

  it('keeps the quota form open with the reason when the server refuses the change', async () => {
    server.use(
      http.get('/api/users', () => HttpResponse.json(page([researcher]))),
      http.get('/api/services', () => HttpResponse.json(page([michigan]))),
      http.get('/api/users/7/permissions', () =>
        HttpResponse.json({ user_id: 7, roles: ['researcher'], services: [{ service_id: 1, monthly_quota: 10, via: 'user' }], all_services: false }),
      ),
      http.patch('/api/users/7/permissions/1', () => apiError(404, 'grant_not_found', 'There is no grant of service 1 to change.')),
    );
    renderApp('/admin/users', adminUser);
    await userEvent.click(await screen.findByRole('button', { name: 'Service permissions of ada' }));
    const list = await screen.findByRole('list', { name: 'Granted services' });
    await userEvent.click(within(list).getByRole('button', { name: `Change the quota of ${michigan.name}` }));
    await userEvent.click(within(list).getByRole('button', { name: 'Save quota' }));
    expect(await screen.findByText(/There is no grant of service 1 to change\./)).toBeInTheDocument();
    expect(within(list).getByRole('spinbutton', { name: `Monthly job quota of ${michigan.name}` })).toHaveValue(10);
  });

  it('shows the audit log, empty and failing', async () => {
    server.use(
      http.get('/api/audit', () =>
        HttpResponse.json(page([{ id: 1, action: 'login.failed', actor: 'ada', user_id: 7, target_type: null, target_id: null, success: false, ip_address: '10.0.0.2', created_at: '2026-11-20T10:00:00Z' }])),
      ),
    );
    const { unmount } = renderApp('/admin/audit', adminUser);
    expect(await screen.findByRole('cell', { name: 'login.failed' })).toBeInTheDocument();
    unmount();
    server.use(http.get('/api/audit', () => HttpResponse.json(page([]))));
    const second = renderApp('/admin/audit', adminUser);
    expect(await screen.findByText('No audit entries.')).toBeInTheDocument();
    second.unmount();
    server.use(http.get('/api/audit', () => apiError(403, 'forbidden', 'Admins only.')));
    renderApp('/admin/audit', adminUser);
    expect(await screen.findByRole('alert')).toHaveTextContent('You do not have access to this. Admins only.');
  });

  it('shows components, alerts with acknowledge, system metrics and statistics', async () => {
    let acknowledged = false;
    server.use(
      http.get('/api/monitoring/health/overall', () =>
        HttpResponse.json({
          overall_status: 'degraded',
          services: [
            { service_name: 'gateway', status: 'healthy', response_time_ms: 3.2 },
            { service_name: 'job_processor', status: 'unhealthy', response_time_ms: null },
          ],
          active_alerts: 1,
        }),
      ),
      http.get('/api/monitoring/alerts', () =>
        HttpResponse.json(page([{ id: 5, subject: 'job_processor', severity: 'critical', title: 'job_processor down', message: 'Unhealthy for 2 minutes', status: 'open', opened_at: '2026-11-20T10:00:00Z' }])),
      ),
      http.post('/api/monitoring/alerts/5/acknowledge', () => {
        acknowledged = true;
        return HttpResponse.json({});
      }),
      http.get('/api/monitoring/metrics/system', () => HttpResponse.json({ cpu_percent: 12.4, memory_percent: 55, disk_percent: 93 })),
      http.get('/api/monitoring/dashboard/stats', () =>
        HttpResponse.json({ day: period(0), week: period(10), month: period(10) }),
      ),
    );
    renderApp('/admin/monitoring', adminUser);
    const components = await screen.findByRole('table', { name: 'Components' });
    expect(within(components).getByText('Unhealthy')).toBeInTheDocument();
    expect(await screen.findByRole('progressbar', { name: 'Disk use' })).toHaveAttribute('aria-valuenow', '93');
    expect(within(await screen.findByRole('list', { name: 'Jobs by status' })).getByText('8')).toBeInTheDocument();
    expect(screen.getByText('Active users: 4')).toBeInTheDocument();
    await userEvent.click(await screen.findByRole('button', { name: 'Acknowledge job_processor down' }));
    await waitFor(() => expect(acknowledged).toBe(true));
  });

  it('shows quiet monitoring states', async () => {
    server.use(
      http.get('/api/monitoring/health/overall', () => apiError(503, 'upstream_unavailable', 'Monitoring is down.')),
      http.get('/api/monitoring/alerts', () => HttpResponse.json(page([]))),
      http.get('/api/monitoring/metrics/system', () => HttpResponse.json({ cpu_percent: 1, memory_percent: 1, disk_percent: 1 })),
      http.get('/api/monitoring/dashboard/stats', () => HttpResponse.json({ day: period(0), week: period(0), month: period(0) })),
    );
    renderApp('/admin/monitoring', adminUser);
    expect(await screen.findByRole('alert')).toHaveTextContent('Monitoring is down.');
    expect(await screen.findByText('No alerts. All quiet.')).toBeInTheDocument();
    expect(await screen.findByText('No jobs counted in this period.')).toBeInTheDocument();
  });
});
