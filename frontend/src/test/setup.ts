import '@testing-library/jest-dom/vitest';
import { cleanup, configure } from '@testing-library/react';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { session } from '../api';
import { server } from './server';

// The first render of a lazy page compiles it; on a busy 2-core machine that can take a few seconds.
// defaultHidden skips the per-element visibility check of *ByRole queries, the slowest part of MUI tests in jsdom.
configure({ asyncUtilTimeout: 10000, defaultHidden: true });

beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => {
  cleanup();
  server.resetHandlers();
  session.clear('signed-out');
  localStorage.clear();
});
afterAll(() => server.close());
