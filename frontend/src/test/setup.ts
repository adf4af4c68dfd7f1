import '@testing-library/jest-dom/vitest';
import { cleanup, configure } from '@testing-library/react';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { session } from '../api';
import { server } from './server';

// The first render of a lazy page compiles it; on a busy 2-core machine that can take a few seconds.
configure({ asyncUtilTimeout: 5000 });

beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => {
  cleanup();
  server.resetHandlers();
  session.clear('signed-out');
  localStorage.clear();
});
afterAll(() => server.close());
