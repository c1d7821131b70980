import { lazy, Suspense } from 'react';
import { NavLink, Route, Routes } from 'react-router';
import { useMe } from './auth';
import { useLive } from './live';
import { Loading } from './components/ui';

// One chunk per page: the first load fetches only the page it shows.
const AuditPage = lazy(() => import('./pages/audit/AuditPage').then((m) => ({ default: m.AuditPage })));
const BlocklistPage = lazy(() => import('./pages/blocklists/BlocklistPage').then((m) => ({ default: m.BlocklistPage })));
const BlocklistsPage = lazy(() => import('./pages/blocklists/BlocklistsPage').then((m) => ({ default: m.BlocklistsPage })));
const FleetPage = lazy(() => import('./pages/fleet/FleetPage').then((m) => ({ default: m.FleetPage })));
const HistoryPage = lazy(() => import('./pages/history/HistoryPage').then((m) => ({ default: m.HistoryPage })));
const HostPage = lazy(() => import('./pages/hosts/HostPage').then((m) => ({ default: m.HostPage })));
const HostsPage = lazy(() => import('./pages/hosts/HostsPage').then((m) => ({ default: m.HostsPage })));
const NewRolloutPage = lazy(() => import('./pages/rollouts/NewRolloutPage').then((m) => ({ default: m.NewRolloutPage })));
const RolloutPage = lazy(() => import('./pages/rollouts/RolloutPage').then((m) => ({ default: m.RolloutPage })));
const RolloutsPage = lazy(() => import('./pages/rollouts/RolloutsPage').then((m) => ({ default: m.RolloutsPage })));
const RunPage = lazy(() => import('./pages/runs/RunPage').then((m) => ({ default: m.RunPage })));
const TokensPage = lazy(() => import('./pages/tokens/TokensPage').then((m) => ({ default: m.TokensPage })));

export function App() {
  const { me, can, signOut } = useMe();
  const live = useLive();
  return (
    <>
      <header className="top">
        <a className="brand" href="/">cgfence</a>
        <nav aria-label="Pages">
          <NavLink to="/" end>Fleet</NavLink>
          <NavLink to="/hosts">Hosts</NavLink>
          <NavLink to="/blocklists">Blocklists</NavLink>
          <NavLink to="/rollouts">Rollouts</NavLink>
          <NavLink to="/history">History</NavLink>
          {can('operator') && <NavLink to="/audit">Audit log</NavLink>}
          {can('admin') && <NavLink to="/tokens">Tokens</NavLink>}
        </nav>
        <div className="who">
          <span className={`live ${live}`} role="status" title="Live updates from the server">{live === 'live' ? '● live' : live === 'connecting' ? '○ connecting' : '○ reconnecting…'}</span>
          <span>{me.name} <span className="badge info">{me.role}</span></span>
          <button type="button" onClick={signOut}>Sign out</button>
        </div>
      </header>
      <main>
        <Suspense fallback={<Loading what="the page" />}>
        <Routes>
          <Route index element={<FleetPage />} />
          <Route path="hosts" element={<HostsPage />} />
          <Route path="hosts/:id" element={<HostPage />} />
          <Route path="blocklists" element={<BlocklistsPage />} />
          <Route path="blocklists/:name" element={<BlocklistPage />} />
          <Route path="rollouts" element={<RolloutsPage />} />
          <Route path="rollouts/new" element={<NewRolloutPage />} />
          <Route path="rollouts/:id" element={<RolloutPage />} />
          <Route path="history" element={<HistoryPage />} />
          <Route path="runs/:id" element={<RunPage />} />
          <Route path="audit" element={<AuditPage />} />
          <Route path="tokens" element={<TokensPage />} />
          <Route path="*" element={<h1>No such page</h1>} />
        </Routes>
        </Suspense>
      </main>
    </>
  );
}
