import { NavLink, Route, Routes } from 'react-router';
import { useMe } from './auth';
import { useLive } from './live';
import { AuditPage } from './pages/audit/AuditPage';
import { BlocklistPage } from './pages/blocklists/BlocklistPage';
import { BlocklistsPage } from './pages/blocklists/BlocklistsPage';
import { FleetPage } from './pages/fleet/FleetPage';
import { HistoryPage } from './pages/history/HistoryPage';
import { HostPage } from './pages/hosts/HostPage';
import { HostsPage } from './pages/hosts/HostsPage';
import { NewRolloutPage } from './pages/rollouts/NewRolloutPage';
import { RolloutPage } from './pages/rollouts/RolloutPage';
import { RolloutsPage } from './pages/rollouts/RolloutsPage';
import { RunPage } from './pages/runs/RunPage';
import { TokensPage } from './pages/tokens/TokensPage';

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
      </main>
    </>
  );
}
