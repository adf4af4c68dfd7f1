// The notification system (toasts) and the screen-reader live region, shared by every page.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';
import Alert from '@mui/material/Alert';
import Snackbar from '@mui/material/Snackbar';
import { errorMessage } from '../api';

interface Toast {
  id: number;
  severity: 'success' | 'error' | 'info' | 'warning';
  message: string;
}

interface FeedbackValue {
  success: (message: string) => void;
  error: (error: unknown) => void;
  info: (message: string) => void;
  /** Says something to screen readers without showing it (e.g. "12 jobs loaded"). */
  announce: (message: string) => void;
}

const FeedbackContext = createContext<FeedbackValue | null>(null);

const visuallyHidden = {
  position: 'absolute',
  width: 1,
  height: 1,
  margin: -1,
  padding: 0,
  overflow: 'hidden',
  clip: 'rect(0 0 0 0)',
  whiteSpace: 'nowrap',
  border: 0,
} as const;

export function FeedbackProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [announcement, setAnnouncement] = useState('');

  const push = useCallback((severity: Toast['severity'], message: string) => {
    setToasts((current) => [...current, { id: Date.now() + Math.random(), severity, message }]);
  }, []);

  const value = useMemo<FeedbackValue>(
    () => ({
      success: (message) => push('success', message),
      error: (error) => push('error', errorMessage(error)),
      info: (message) => push('info', message),
      announce: (message) => {
        // Clearing first makes a repeated message be read again.
        setAnnouncement('');
        setTimeout(() => setAnnouncement(message), 50);
      },
    }),
    [push],
  );

  const current = toasts[0];
  const close = () => setToasts((rest) => rest.slice(1));

  return (
    <FeedbackContext.Provider value={value}>
      {children}
      <div aria-live="polite" aria-atomic="true" style={visuallyHidden} data-testid="live-region">
        {announcement}
      </div>
      {current && (
      <Snackbar
        key={current.id}
        open
        autoHideDuration={current.severity === 'error' ? 8000 : 4000}
        onClose={(_, reason) => reason !== 'clickaway' && close()}
        anchorOrigin={{ vertical: 'bottom', horizontal: 'center' }}
      >
          <Alert
            severity={current.severity}
            onClose={close}
            variant="filled"
            role={current.severity === 'error' ? 'alert' : 'status'}
            sx={{ width: '100%' }}
          >
            {current.message}
          </Alert>
      </Snackbar>
      )}
    </FeedbackContext.Provider>
  );
}

export function useFeedback(): FeedbackValue {
  const value = useContext(FeedbackContext);
  if (!value) throw new Error('useFeedback outside FeedbackProvider');
  return value;
}

export { visuallyHidden };
