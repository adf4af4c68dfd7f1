import { http, HttpResponse, ws } from 'msw';
import { setupServer } from 'msw/node';
import { page, researcher } from './fixtures';

/** The notification WebSocket; tests push messages through `notificationSocket.broadcast`. */
export const notificationSocket = ws.link('ws://*/ws/notifications');

/** Handlers every page needs (the signed-in user, the bell); each test adds its own with server.use. */
export const defaultHandlers = [
  http.get('/api/auth/user', () => HttpResponse.json(researcher)),
  http.get('/api/notifications/unread-count', () => HttpResponse.json({ unread: 0 })),
  http.get('/api/templates', () => HttpResponse.json(page([]))),
  http.get('/api/services', () => HttpResponse.json(page([]))),
  notificationSocket.addEventListener('connection', () => undefined),
];

export const server = setupServer(...defaultHandlers);

export const apiError = (status: number, error: string, detail: string, extra: object = {}) =>
  HttpResponse.json({ error, detail, ...extra }, { status });
