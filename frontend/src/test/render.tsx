import type { ReactElement } from 'react';
import { render, type RenderResult } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router-dom';
import { http, HttpResponse } from 'msw';
import { AppRoutes, Providers } from '../App';
import { session, type User } from '../api';
import { researcher } from './fixtures';
import { server } from './server';

/** Signs `user` in as the app would after a login: tokens stored, /api/auth/user answering. */
export function signIn(user: User = researcher): void {
  session.store({ access_token: 'access-1', refresh_token: 'refresh-1', token_type: 'bearer', expires_in: 900 });
  server.use(http.get('/api/auth/user', () => HttpResponse.json(user)));
}

function LocationProbe() {
  const location = useLocation();
  return <div data-testid="location">{location.pathname + location.search}</div>;
}

/** The whole app at `path` (routes, layout, providers), as a signed-in user unless `user` is null. */
export function renderApp(path: string, user: User | null = researcher): RenderResult {
  if (user) signIn(user);
  return render(
    <MemoryRouter initialEntries={[path]} future={{ v7_startTransition: true, v7_relativeSplatPath: true }}>
      <Providers>
        <AppRoutes />
        <LocationProbe />
      </Providers>
    </MemoryRouter>,
  );
}

/** One element with the providers, for shared parts. */
export function renderWithProviders(ui: ReactElement, path = '/'): RenderResult {
  return render(
    <MemoryRouter initialEntries={[path]} future={{ v7_startTransition: true, v7_relativeSplatPath: true }}>
      <Providers>
        <Routes>
          <Route path="*" element={ui} />
        </Routes>
      </Providers>
    </MemoryRouter>,
  );
}

/** Types into a field at once (paste), much faster than key by key. */
export async function fill(element: HTMLElement, text: string): Promise<void> {
  const user = userEvent.setup();
  await user.click(element);
  await user.clear(element);
  await user.paste(text);
}
