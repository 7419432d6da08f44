/** The console's entry: login, navigation, hash routes (#/overview, #/devices, #/device/<id>, #/alarms, #/types, #/groups). */
import { render } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { api, ApiError, loadSession, saveSession, type Role, type Session } from './api.ts';
import { AppContext, makeT, useUnauthorized, type Ctx } from './ctx.ts';
import { initialLang, languageNames, type Lang } from './i18n.ts';
import { AlarmsPage } from './pages/alarms.tsx';
import { DevicePage } from './pages/device.tsx';
import { DevicesPage } from './pages/devices.tsx';
import { GroupsPage } from './pages/groups.tsx';
import { OverviewPage } from './pages/overview.tsx';
import { TypesPage } from './pages/types.tsx';
import './styles.css';

const LANG_KEY = 'iot-console.lang';

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function LanguageSelect({ lang, setLang, label }: { lang: Lang; setLang: (l: Lang) => void; label: string }) {
  return (
    <label class="lang">
      {label}{' '}
      <select
        aria-label={label}
        value={lang}
        onChange={(e) => setLang((e.currentTarget as HTMLSelectElement).value as Lang)}
      >
        {(Object.keys(languageNames) as Lang[]).map((l) => (
          <option value={l} key={l} lang={l}>
            {languageNames[l]}
          </option>
        ))}
      </select>
    </label>
  );
}

function Login({ onLogin, lang, setLang }: { onLogin: (s: Session) => void; lang: Lang; setLang: (l: Lang) => void }) {
  const t = makeT(lang);
  const last = loadLastLogin();
  const [role, setRole] = useState<Role>(last.role);
  const [appId, setAppId] = useState(last.appId);
  const [account, setAccount] = useState(last.account);
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const path = role === 'admin' ? '/api/v1/admin_login' : '/api/v1/customer_login';
      const info = await api<{ access_token: string }>(undefined, 'POST', path, {
        app_id: appId.trim(),
        account: account.trim(),
        password,
      });
      localStorage.setItem(LAST_LOGIN_KEY, JSON.stringify({ role, appId: appId.trim(), account: account.trim() }));
      onLogin({ token: info.access_token, role, appId: appId.trim(), account: account.trim() });
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>{t('title')}</h1>
      <form onSubmit={submit} aria-label={t('logIn')}>
        <fieldset role="radiogroup" aria-label={t('role')}>
          <legend>{t('role')}</legend>
          <label>
            <input
              type="radio"
              name="role"
              value="admin"
              checked={role === 'admin'}
              onChange={() => setRole('admin')}
            />{' '}
            {t('administrator')}
          </label>
          <label>
            <input
              type="radio"
              name="role"
              value="customer"
              checked={role === 'customer'}
              onChange={() => setRole('customer')}
            />{' '}
            {t('customer')}
          </label>
        </fieldset>
        <label>
          {t('appId')}
          <input
            name="app_id"
            required
            autoComplete="organization"
            value={appId}
            onInput={(e) => setAppId(e.currentTarget.value)}
          />
        </label>
        <label>
          {t('account')}
          <input
            name="account"
            required
            autoComplete="username"
            value={account}
            onInput={(e) => setAccount(e.currentTarget.value)}
          />
        </label>
        <label>
          {t('password')}
          <input
            name="password"
            type="password"
            required
            autoComplete="current-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? t('loggingIn') : t('logIn')}
        </button>
      </form>
      <LanguageSelect lang={lang} setLang={setLang} label={t('language')} />
    </main>
  );
}

const LAST_LOGIN_KEY = 'iot-console.last-login';
function loadLastLogin(): { role: Role; appId: string; account: string } {
  try {
    const v = JSON.parse(localStorage.getItem(LAST_LOGIN_KEY) ?? '{}') as {
      role?: string;
      appId?: string;
      account?: string;
    };
    return { role: v.role === 'customer' ? 'customer' : 'admin', appId: v.appId ?? '', account: v.account ?? '' };
  } catch {
    return { role: 'admin', appId: '', account: '' };
  }
}

const NAV = [
  ['#/overview', 'overview'],
  ['#/devices', 'devices'],
  ['#/alarms', 'alarms'],
  ['#/types', 'types'],
  ['#/groups', 'groups'],
] as const;

function Route({ hash }: { hash: string }) {
  const path = hash.replace(/^#/, '') || '/overview';
  const m = /^\/device\/([^/?]+)/.exec(path);
  if (m) return <DevicePage id={decodeURIComponent(m[1] ?? '')} key={m[1]} />;
  if (path.startsWith('/devices')) return <DevicesPage />;
  if (path.startsWith('/alarms')) return <AlarmsPage />;
  if (path.startsWith('/types')) return <TypesPage />;
  if (path.startsWith('/groups')) return <GroupsPage />;
  return <OverviewPage />;
}

function App() {
  const [session, setSession] = useState<Session | undefined>(loadSession);
  const [lang, setLangState] = useState<Lang>(() =>
    initialLang(localStorage.getItem(LANG_KEY), navigator.languages ?? [navigator.language]),
  );
  const hash = useHash();
  const setLang = useCallback((l: Lang) => {
    localStorage.setItem(LANG_KEY, l);
    setLangState(l);
  }, []);
  useEffect(() => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }, [lang]);
  const logout = useCallback(() => {
    saveSession(undefined);
    setSession(undefined);
  }, []);
  useUnauthorized(logout);
  const ctx = useMemo<Ctx | null>(
    () => (session ? { session, lang, t: makeT(lang), logout } : null),
    [session, lang, logout],
  );
  useEffect(() => {
    if (ctx) document.title = ctx.t('title');
  }, [ctx]);

  if (!ctx) {
    return (
      <Login
        lang={lang}
        setLang={setLang}
        onLogin={(s) => {
          saveSession(s);
          setSession(s);
          if (!location.hash) location.hash = '#/overview';
        }}
      />
    );
  }
  const { t } = ctx;
  const current = (hash || '#/overview').replace(/^#\/device\//, '#/devices/');
  return (
    <AppContext.Provider value={ctx}>
      <header class="top">
        <strong class="brand">{t('title')}</strong>
        <nav aria-label={t('mainNav')}>
          <ul>
            {NAV.map(([href, key]) => (
              <li key={href}>
                <a href={href} aria-current={current.startsWith(href) ? 'page' : undefined}>
                  {t(key)}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {ctx.session.account}
          {ctx.session.role === 'customer' ? ` · ${t('readOnly')}` : ''}
        </span>
        <LanguageSelect lang={lang} setLang={setLang} label={t('language')} />
        <button type="button" onClick={logout}>
          {t('logOut')}
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        <Route hash={hash} />
      </main>
    </AppContext.Provider>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
