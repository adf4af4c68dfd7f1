import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { session } from '../api';
import { dashboardBody, researcher } from '../test/fixtures';
import { fill, renderApp } from '../test/render';
import { apiError, server } from '../test/server';

const dashboardEmpty = http.get('/api/dashboard', () =>
  HttpResponse.json(dashboardBody()),
);

describe('sign in', () => {
  it('sends an anonymous visitor to the sign-in page, then back where they were going', async () => {
    server.use(
      dashboardEmpty,
      http.post('/api/auth/login', async ({ request }) => {
        const body = (await request.json()) as { username: string; password: string };
        expect(body).toEqual({ username: 'ada', password: 'correct horse' });
        return HttpResponse.json({ access_token: 'a', refresh_token: 'r', token_type: 'bearer', expires_in: 900, user: researcher });
      }),
      http.get('/api/jobs', () => HttpResponse.json({ items: [], total: 0, page: 1, page_size: 20 })),
      http.get('/api/services', () => HttpResponse.json({ items: [], total: 0, page: 1, page_size: 100 })),
    );
    renderApp('/jobs', null);
    expect(await screen.findByRole('heading', { level: 1, name: 'Sign in' })).toHaveFocus();
    await fill(screen.getByLabelText(/Username or e-mail/), 'ada');
    await fill(screen.getByLabelText(/Password/), 'correct horse');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('heading', { level: 1, name: 'Jobs' })).toBeInTheDocument();
    expect(screen.getByTestId('location')).toHaveTextContent('/jobs');
    expect(session.refreshToken).toBe('r');
  });

  it('says when the password is wrong', async () => {
    server.use(http.post('/api/auth/login', () => apiError(401, 'invalid_credentials', 'Invalid username or password.')));
    renderApp('/login', null);
    await fill(await screen.findByLabelText(/Username or e-mail/), 'ada');
    await fill(screen.getByLabelText(/Password/), 'nope');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Wrong username or password.');
  });

  it('says when login is throttled', async () => {
    server.use(http.post('/api/auth/login', () => apiError(429, 'too_many_attempts', 'Try again in 60 seconds.')));
    renderApp('/login', null);
    await fill(await screen.findByLabelText(/Username or e-mail/), 'ada');
    await fill(screen.getByLabelText(/Password/), 'nope');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Too many attempts. Try again in 60 seconds.');
  });

  it('keeps the session across a reload with the stored refresh token', async () => {
    localStorage.setItem('fi.refresh_token', 'stored-refresh');
    server.use(
      dashboardEmpty,
      http.post('/api/auth/refresh', async ({ request }) => {
        expect(await request.json()).toEqual({ refresh_token: 'stored-refresh' });
        return HttpResponse.json({ access_token: 'a2', refresh_token: 'r2', token_type: 'bearer', expires_in: 900 });
      }),
    );
    renderApp('/', null);
    expect(await screen.findByRole('heading', { level: 1, name: 'Dashboard' })).toBeInTheDocument();
    expect(session.refreshToken).toBe('r2');
  });

  it('shows a clear message when the session has ended', async () => {
    localStorage.setItem('fi.refresh_token', 'revoked');
    server.use(http.post('/api/auth/refresh', () => apiError(401, 'invalid_refresh_token', 'Refresh token revoked.')));
    renderApp('/', null);
    expect(await screen.findByRole('alert')).toHaveTextContent('Your session has ended. Please sign in again.');
    expect(screen.getByTestId('location')).toHaveTextContent('/login');
  });

  it('ends the session mid-use when the account is deactivated', async () => {
    server.use(
      http.get('/api/dashboard', () => apiError(401, 'account_inactive', 'This account is deactivated.')),
      http.post('/api/auth/refresh', () => apiError(401, 'account_inactive', 'This account is deactivated.')),
    );
    renderApp('/');
    expect(await screen.findByText('Your session has ended. Please sign in again.')).toBeInTheDocument();
    expect(screen.getByRole('heading', { level: 1, name: 'Sign in' })).toBeInTheDocument();
  });

  it('signs out from the account menu', async () => {
    let loggedOut = false;
    server.use(
      dashboardEmpty,
      http.post('/api/auth/logout', () => {
        loggedOut = true;
        return new HttpResponse(null, { status: 204 });
      }),
    );
    renderApp('/');
    await screen.findByRole('heading', { level: 1, name: 'Dashboard' });
    await userEvent.click(screen.getByRole('button', { name: 'Account menu for ada' }));
    await userEvent.click(screen.getByRole('menuitem', { name: 'Sign out' }));
    expect(await screen.findByText('You have signed out.')).toBeInTheDocument();
    expect(loggedOut).toBe(true);
    expect(session.refreshToken).toBeNull();
  });
});

describe('register', () => {
  it('creates an account and sends the user to sign in', async () => {
    server.use(http.post('/api/auth/register', () => HttpResponse.json(researcher, { status: 201 })));
    renderApp('/register', null);
    await fill(await screen.findByLabelText(/^Username/), 'ada');
    await fill(screen.getByLabelText(/^E-mail/), 'ada@example.org');
    await fill(screen.getByLabelText(/^Password/), 'a long enough password');
    await fill(screen.getByLabelText(/^Repeat password/), 'a long enough password');
    await userEvent.click(screen.getByRole('button', { name: 'Create account' }));
    expect(await screen.findByText('Your account is ready. Sign in to continue.')).toBeInTheDocument();
  });

  it('says when registration is switched off', async () => {
    server.use(http.post('/api/auth/register', () => apiError(403, 'registration_disabled', 'Registration is disabled.')));
    renderApp('/register', null);
    await fill(await screen.findByLabelText(/^Username/), 'ada');
    await fill(screen.getByLabelText(/^E-mail/), 'ada@example.org');
    await fill(screen.getByLabelText(/^Password/), 'pw-pw-pw-pw-pw');
    await userEvent.click(screen.getByRole('button', { name: 'Create account' }));
    await waitFor(() =>
      expect(screen.getByRole('alert')).toHaveTextContent('Registration is switched off on this platform.'),
    );
  });
});
