// The shell: decides between setup, login and the app; the navigation; the page for a path.

import { useEffect, useState } from 'react';
import { hasStoredSession, onSessionChange, publicRequest, refreshSession, sessionUser, logout, type SessionUser } from './api';
import { Loading, ErrorBox } from './components/ui';
import { Link, match, navigate, useLocation } from './router';
import { applyTheme, storedTheme, type ThemeChoice } from './theme';
import { SetupPage } from './pages/Setup';
import { LoginPage } from './pages/Login';
import { OverviewPage } from './pages/Overview';
import { ModelsPage } from './pages/Models';
import { ProjectsPage } from './pages/Projects';
import { ProjectPage } from './pages/Project';
import { UsagePage } from './pages/Usage';
import { SettingsPage, settingsTabs } from './pages/Settings';
import { PermissionsProvider, usePermissions } from './permissions';
import { useApi } from './hooks';
import type { Me } from './types';
import { ProfilePage } from './pages/Profile';

type Gate = { state: 'checking' } | { state: 'setup'; tokenRequired: boolean } | { state: 'login' } | { state: 'in'; user: SessionUser } | { state: 'down'; message: string };

const NAV = [
  { to: '/', label: 'Overview', match: (path: string) => path === '/' },
  { to: '/models', label: 'Models', match: (path: string) => path.startsWith('/models') },
  { to: '/projects', label: 'Projects', match: (path: string) => path.startsWith('/projects') },
  { to: '/usage', label: 'Usage', match: (path: string) => path.startsWith('/usage') },
  { to: '/settings/general', label: 'Settings', match: (path: string) => path.startsWith('/settings') },
  { to: '/profile', label: 'Profile', match: (path: string) => path.startsWith('/profile') },
];

export function App() {
  const location = useLocation();
  const [gate, setGate] = useState<Gate>({ state: 'checking' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const status = await publicRequest<{ needs_setup: boolean; setup_token_required: boolean }>('/api/setup/status');
        if (cancelled) return;
        if (status.needs_setup) return setGate({ state: 'setup', tokenRequired: status.setup_token_required });
        if (sessionUser()) return setGate({ state: 'in', user: sessionUser()! });
        if (hasStoredSession() && (await refreshSession()) && sessionUser()) return setGate({ state: 'in', user: sessionUser()! });
        if (!cancelled) setGate({ state: 'login' });
      } catch (error) {
        if (!cancelled) setGate({ state: 'down', message: (error as Error).message });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [attempt]);

  // A session that ends anywhere (refresh refused, logout) returns to the login page.
  useEffect(
    () =>
      onSessionChange((user) => {
        setGate((current) => (user ? { state: 'in', user } : current.state === 'in' ? { state: 'login' } : current));
      }),
    [],
  );

  // Keep the URL in step with the gate, remembering where the person was going.
  useEffect(() => {
    if (gate.state === 'setup' && location.path !== '/setup') navigate('/setup', { replace: true });
    if (gate.state === 'login' && location.path !== '/login') {
      const back = location.path === '/' || location.path === '/setup' ? '' : '?next=' + encodeURIComponent(location.path);
      navigate('/login' + back, { replace: true });
    }
    if (gate.state === 'in' && (location.path === '/login' || location.path === '/setup')) {
      const next = location.search.get('next');
      navigate(next && next.startsWith('/') ? next : '/', { replace: true });
    }
  }, [gate, location.path, location.search]);

  if (gate.state === 'checking') return <div className="centered"><Loading what="Connecting to Routerly" /></div>;
  if (gate.state === 'down')
    return (
      <div className="centered">
        <ErrorBox error={gate.message} retry={() => setAttempt((value) => value + 1)} />
      </div>
    );
  if (gate.state === 'setup') return <SetupPage tokenRequired={gate.tokenRequired} />;
  if (gate.state === 'login') return <LoginPage />;
  return <Shell user={gate.user} />;
}

function ThemeSwitch() {
  const [choice, setChoice] = useState<ThemeChoice>(storedTheme);
  return (
    <label className="theme-switch">
      <span className="visually-hidden">Theme</span>
      <select
        value={choice}
        data-testid="theme-select"
        onChange={(event) => {
          const next = event.target.value as ThemeChoice;
          setChoice(next);
          applyTheme(next);
        }}
      >
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function Shell({ user }: { user: SessionUser }) {
  const me = useApi<Me>('/api/me');
  if (me.error && !me.error.routeMissing) return <ErrorBox error={me.error} retry={me.reload} />;
  if (!me.data && !me.error) return <Loading what="Loading your permissions" />;
  return (
    <PermissionsProvider me={me.data ?? null}>
      <ShellFor user={user} />
    </PermissionsProvider>
  );
}

function ShellFor({ user }: { user: SessionUser }) {
  const location = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const { can } = usePermissions();
  useEffect(() => setMenuOpen(false), [location.path]);
  const nav = NAV.filter((item) => item.to !== '/settings/general' || settingsTabs(can).length > 0).map((item) =>
    item.to === '/settings/general' ? { ...item, to: `/settings/${settingsTabs(can)[0][0]}` } : item,
  );
  return (
    <div className="shell">
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          <img src="/dashboard/favicon.svg" alt="" width="24" height="24" /> Routerly
        </Link>
        <button
          type="button"
          className="button button-ghost menu-button"
          aria-expanded={menuOpen}
          aria-controls="main-nav"
          onClick={() => setMenuOpen((open) => !open)}
        >
          Menu
        </button>
      </header>
      <nav id="main-nav" className={'sidebar' + (menuOpen ? ' sidebar-open' : '')} aria-label="Main">
        <Link to="/" className="brand brand-side">
          <img src="/dashboard/favicon.svg" alt="" width="24" height="24" /> Routerly
        </Link>
        <ul>
          {nav.map((item) => (
            <li key={item.to}>
              <Link to={item.to} className={'nav-link' + (item.match(location.path) ? ' nav-active' : '')} aria-current={item.match(location.path) ? 'page' : undefined}>
                {item.label}
              </Link>
            </li>
          ))}
        </ul>
        <div className="sidebar-foot">
          <div className="muted small" title={user.email}>
            {user.email}
          </div>
          <ThemeSwitch />
          <button type="button" className="button button-ghost" onClick={() => logout()}>
            Log out
          </button>
        </div>
      </nav>
      <main id="main" className="main" tabIndex={-1}>
        <Page path={location.path} />
      </main>
    </div>
  );
}

function Page({ path }: { path: string }) {
  let params: Record<string, string> | null;
  if (path === '/') return <OverviewPage />;
  if (path === '/models') return <ModelsPage />;
  if (path === '/projects') return <ProjectsPage />;
  if ((params = match('/projects/:id', path))) return <ProjectPage projectKey={params.id} tab="general" />;
  if ((params = match('/projects/:id/:tab', path))) return <ProjectPage projectKey={params.id} tab={params.tab} />;
  if (path === '/usage') return <UsagePage />;
  if (path === '/settings') return <SettingsPage tab="general" />;
  if ((params = match('/settings/:tab', path))) return <SettingsPage tab={params.tab} />;
  if (path === '/profile') return <ProfilePage />;
  return (
    <div className="state state-empty">
      <strong>No page here.</strong> <Link to="/">Go to the overview</Link>.
    </div>
  );
}
