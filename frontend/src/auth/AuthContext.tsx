import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { auth, renew, session, type User } from '../api';

interface AuthValue {
  user: User | null;
  /** True while a stored refresh token is being exchanged on first load. */
  restoring: boolean;
  /** Why the last session ended, shown on the sign-in page. */
  endedReason: string | null;
  login: (username: string, password: string) => Promise<User>;
  logout: () => Promise<void>;
  setUser: (user: User) => void;
  isAdmin: boolean;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null>(null);
  const [restoring, setRestoring] = useState<boolean>(() => session.refreshToken !== null);
  const [endedReason, setEndedReason] = useState<string | null>(null);

  useEffect(() => {
    // A reload keeps the session: the stored refresh token buys a new access token.
    if (!restoring) return;
    let live = true;
    void (async () => {
      try {
        if (session.accessToken || (await renew())) {
          const me = await auth.me();
          if (live) setUser(me);
        }
      } catch {
        // The session could not be restored; the sign-in page follows.
      } finally {
        if (live) setRestoring(false);
      }
    })();
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(
    () =>
      session.subscribe((reason) => {
        if (reason === 'expired') {
          setUser(null);
          setEndedReason('Your session has ended. Please sign in again.');
        } else if (reason === 'signed-out') {
          setUser(null);
        }
      }),
    [],
  );

  const login = useCallback(async (username: string, password: string) => {
    const pair = await auth.login(username, password);
    const me = pair.user ?? (await auth.me());
    setEndedReason(null);
    setUser(me);
    return me;
  }, []);

  const logout = useCallback(async () => {
    try {
      await auth.logout();
    } catch {
      // Signed out locally even when the server cannot be told.
    }
    setEndedReason(null);
    setUser(null);
  }, []);

  const value = useMemo<AuthValue>(
    () => ({
      user,
      restoring,
      endedReason,
      login,
      logout,
      setUser,
      isAdmin: user?.roles?.includes('admin') ?? false,
    }),
    [user, restoring, endedReason, login, logout],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}
