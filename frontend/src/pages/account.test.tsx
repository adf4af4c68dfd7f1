import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { michigan, page } from '../test/fixtures';
import { fill, renderApp } from '../test/render';
import { apiError, server } from '../test/server';

const note = (id: number, is_read: boolean) => ({
  id,
  type: 'job.completed',
  title: `Job ${id} completed`,
  message: 'Results are ready.',
  link: `/jobs/${id}`,
  is_read,
  created_at: '2026-11-20T10:00:00Z',
});

const prefs = [
  { event_type: 'job.completed', in_app: true, email: true, webhook: false, is_default: true },
  { event_type: 'job.failed', in_app: true, email: false, webhook: false, is_default: true },
];

describe('notifications page', () => {
  it('lists notifications, marks one and all as read, and saves preferences', async () => {
    const calls: string[] = [];
    let saved: unknown;
    server.use(
      http.get('/api/notifications', () => HttpResponse.json(page([note(1, false), note(2, true)]))),
      http.post('/api/notifications/1/read', () => {
        calls.push('read 1');
        return new HttpResponse(null, { status: 204 });
      }),
      http.post('/api/notifications/read-all', () => {
        calls.push('read all');
        return new HttpResponse(null, { status: 204 });
      }),
      http.get('/api/notifications/preferences', () => HttpResponse.json({ preferences: prefs })),
      http.put('/api/notifications/preferences', async ({ request }) => {
        saved = await request.json();
        return HttpResponse.json({ preferences: prefs });
      }),
    );
    renderApp('/notifications');
    const list = await screen.findByRole('list', { name: 'Notifications' });
    expect(within(list).getByRole('link', { name: 'Job 1 completed' })).toHaveAttribute('href', '/jobs/1');
    expect(within(list).getAllByRole('button', { name: /Mark .* as read/ })).toHaveLength(1);
    await userEvent.click(within(list).getByRole('button', { name: 'Mark “Job 1 completed” as read' }));
    await userEvent.click(screen.getByRole('button', { name: 'Mark all as read' }));
    await waitFor(() => expect(calls).toEqual(['read 1', 'read all']));

    await userEvent.click(await screen.findByRole('checkbox', { name: 'job.failed by E-mail' }));
    await userEvent.click(screen.getByRole('button', { name: 'Save preferences' }));
    await waitFor(() =>
      expect(saved).toEqual({
        preferences: {
          'job.completed': { in_app: true, email: true, webhook: false },
          'job.failed': { in_app: true, email: true, webhook: false },
        },
      }),
    );
  });

  it('has empty and error states', async () => {
    server.use(
      http.get('/api/notifications', () => HttpResponse.json(page([]))),
      http.get('/api/notifications/preferences', () => apiError(503, 'upstream_unavailable', 'The notification service is unavailable.')),
    );
    renderApp('/notifications');
    expect(await screen.findByText('No notifications yet.')).toBeInTheDocument();
    expect(await screen.findByRole('alert')).toHaveTextContent('The notification service is unavailable.');
  });
});

describe('settings', () => {
  function settingsHandlers() {
    return [
      http.get('/api/tokens', () =>
        HttpResponse.json(page([{ id: 3, name: 'laptop', token_prefix: 'fi_ab', created_at: '2026-11-01T00:00:00Z', expires_at: null, last_used_at: null, revoked_at: null }])),
      ),
      http.get('/api/services', () => HttpResponse.json(page([michigan]))),
      http.get('/api/users/me/service-credentials', () =>
        HttpResponse.json(page([{ service_id: 1, has_token: true, expires_at: new Date(Date.now() + 2 * 86400000).toISOString(), expires_soon: true, expired: false, warning: null }])),
      ),
      http.get('/api/notifications/webhooks', () => HttpResponse.json(page([]))),
    ];
  }

  it('creates an API token, shows it once with a copy button, and revokes one', async () => {
    let revoked = false;
    server.use(
      ...settingsHandlers(),
      http.post('/api/tokens', async ({ request }) => {
        expect(await request.json()).toEqual({ name: 'ci script', expires_in_days: 90 });
        return HttpResponse.json({ id: 4, name: 'ci script', token: 'fi_secret_token_value', created_at: '2026-11-20T00:00:00Z' }, { status: 201 });
      }),
      http.delete('/api/tokens/3', () => {
        revoked = true;
        return new HttpResponse(null, { status: 204 });
      }),
    );
    renderApp('/settings');
    const tokens = await screen.findByRole('region', { name: 'Personal API tokens' });
    await fill(within(tokens).getByRole('textbox', { name: 'Token name' }), 'ci script');
    await userEvent.click(within(tokens).getByRole('button', { name: 'Create token' }));
    expect(await within(tokens).findByTestId('new-token')).toHaveTextContent('fi_secret_token_value');
    expect(within(tokens).getByText('Copy this token now: it will not be shown again.')).toBeInTheDocument();
    expect(within(tokens).getByRole('button', { name: 'Copy token' })).toBeInTheDocument();
    await userEvent.click(within(tokens).getByRole('button', { name: 'Revoke laptop' }));
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Revoke' }));
    await waitFor(() => expect(revoked).toBe(true));
  });

  it('warns about a credential that expires soon and removes it', async () => {
    let removed = false;
    server.use(
      ...settingsHandlers(),
      http.delete('/api/users/me/service-credentials/1', () => {
        removed = true;
        return new HttpResponse(null, { status: 204 });
      }),
    );
    renderApp('/settings');
    const creds = await screen.findByRole('list', { name: 'Stored credentials' });
    expect(within(creds).getByText('Michigan Imputation Server')).toBeInTheDocument();
    expect(within(creds).getByText('Expires within 7 days: replace it soon.')).toBeInTheDocument();
    await userEvent.click(within(creds).getByRole('button', { name: 'Remove credential for Michigan Imputation Server' }));
    await waitFor(() => expect(removed).toBe(true));
  });

  it('shows empty lists and a token list error', async () => {
    server.use(
      http.get('/api/tokens', () => apiError(500, 'internal_error', 'The user service failed.')),
      http.get('/api/services', () => HttpResponse.json(page([]))),
      http.get('/api/users/me/service-credentials', () => HttpResponse.json(page([]))),
      http.get('/api/notifications/webhooks', () => HttpResponse.json(page([]))),
    );
    renderApp('/settings');
    expect(await screen.findByRole('alert')).toHaveTextContent('The user service failed.');
    expect(await screen.findByText('No credentials stored.')).toBeInTheDocument();
    expect(screen.getByText('No webhooks.')).toBeInTheDocument();
  });
});
