import { createContext, useContext, useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { api, ApiError, ok, session } from './api/client';
import { can, type Role, type WhoAmI } from './api/types';
import { ErrorView } from './components/ui';

const Ctx = createContext<{ me: WhoAmI; signOut(): void } | null>(null);

export function useMe(): { me: WhoAmI; can(role: Role): boolean; signOut(): void } {
  const c = useContext(Ctx);
  if (!c) throw new Error('useMe outside <SignedIn>');
  return { me: c.me, can: (r) => can(c.me.role, r), signOut: c.signOut };
}

/** Renders children once a token is known and valid; otherwise the sign-in form. */
export function SignedIn({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<WhoAmI | null>(null);
  const [checking, setChecking] = useState(session.token !== null);
  const [error, setError] = useState<ApiError | null>(null);

  const check = async () => {
    setChecking(true);
    try {
      setMe(await ok(api.GET('/whoami')));
      setError(null);
    } catch (e) {
      session.clear();
      setMe(null);
      setError(e instanceof ApiError ? e : new ApiError({ statusCode: 0, code: 'network', message: String(e) }));
    } finally {
      setChecking(false);
    }
  };
  useEffect(() => {
    if (session.token) void check();
    const onUnauthorized = () => {
      session.clear();
      setMe(null);
    };
    window.addEventListener('cgfence:unauthorized', onUnauthorized);
    return () => window.removeEventListener('cgfence:unauthorized', onUnauthorized);
  }, []);

  const signOut = () => {
    session.clear();
    setMe(null);
  };
  if (me) return <Ctx.Provider value={{ me, signOut }}>{children}</Ctx.Provider>;
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const token = String(new FormData(e.currentTarget).get('token') ?? '').trim();
    if (!token) return;
    session.set(token);
    void check();
  };
  return (
    <main className="signin">
      <h1>cgfence</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <label htmlFor="token">API token</label>
        <input id="token" name="token" type="password" autoComplete="off" placeholder="cgf_…" required />
        <button type="submit" disabled={checking}>{checking ? 'Checking…' : 'Sign in'}</button>
        <p className="hint">
          The token is kept for this browser tab only. <code>npm run fleet</code> prints the local fleet's admin token; an admin
          issues others with <code>cgfence token create NAME --role viewer</code>.
        </p>
      </form>
      {error && <ErrorView error={error} />}
    </main>
  );
}
