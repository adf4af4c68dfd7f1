import { useEffect, useRef } from 'react';
import { notificationSocketUrl, session, type Notification } from '../api';

/**
 * Listens on /ws/notifications for new notifications and calls `onMessage` with each; reconnects with backoff
 * and with the current access token (which the session renews silently). `onResync` is called when pushes may
 * have been missed: on reconnecting, and when the server says so (`{"type": "resync"}`, after it lost Redis).
 */
export function useNotificationSocket(
  onMessage: (notification: Notification) => void,
  enabled: boolean,
  onResync?: () => void,
): void {
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const resync = useRef(onResync);
  resync.current = onResync;

  useEffect(() => {
    if (!enabled || typeof WebSocket === 'undefined') return;
    let socket: WebSocket | null = null;
    let retryMs = 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let opened = false;

    const connect = () => {
      const url = notificationSocketUrl();
      if (!url || stopped) return;
      socket = new WebSocket(url);
      socket.onopen = () => {
        retryMs = 1000;
        if (opened) resync.current?.();
        opened = true;
      };
      socket.onmessage = (event: MessageEvent<string>) => {
        try {
          const data = JSON.parse(event.data) as { type?: string; notification?: Notification } & Partial<Notification>;
          if (data.type === 'resync') {
            resync.current?.();
            return;
          }
          const notification = data.notification ?? (data.id !== undefined && data.title ? (data as Notification) : null);
          if (notification) handler.current(notification);
        } catch {
          // heartbeats and non-JSON frames
        }
      };
      socket.onclose = (event) => {
        // 4401/1008: the token was refused; the session renewal gives a fresh one before the next try.
        if (stopped || !session.refreshToken) return;
        timer = setTimeout(connect, event.code === 1000 ? 1000 : retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      };
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      socket?.close(1000);
    };
  }, [enabled]);
}
