/** What every page gets: the session, the language and its translate function, and live events. */
import { createContext } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { setUnauthorizedHandler, type Session } from './api.ts';
import { translate, type Key, type Lang } from './i18n.ts';
import { openStream, type LiveEvent } from './sse.ts';

export interface Ctx {
  session: Session;
  lang: Lang;
  t: (key: Key, vars?: Record<string, string | number>) => string;
  logout: () => void;
}

export const AppContext = createContext<Ctx | null>(null);

export function useApp(): Ctx {
  const c = useContext(AppContext);
  if (!c) throw new Error('no app context');
  return c;
}

export function makeT(lang: Lang): Ctx['t'] {
  return (key, vars) => translate(lang, key, vars);
}

/**
 * Live events of the given kinds (and devices) while the component is shown; returns whether the stream is
 * open. `onEvent` may change between renders: the latest one is called. `onOpen` is called each time the stream
 * opens (again): what happened between the page's load (or a dropped stream) and then came as no event, so a page
 * that shows a list reads it again.
 */
export function useLive(
  kinds: readonly string[],
  devices: readonly string[] | undefined,
  onEvent: (e: LiveEvent) => void,
  onOpen?: () => void,
): boolean {
  const { session, logout } = useApp();
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const opened = useRef(onOpen);
  opened.current = onOpen;
  const [open, setOpen] = useState(false);
  const key = `${kinds.join(',')}|${devices?.join(',') ?? ''}`;
  useEffect(() => {
    if (devices && devices.length === 0) return undefined;
    return openStream({
      token: session.token,
      kinds,
      ...(devices ? { devices } : {}),
      onEvent: (e) => handler.current(e),
      onState: (open) => {
        setOpen(open);
        if (open) opened.current?.();
      },
      onUnauthorized: logout,
    });
  }, [session.token, key]);
  return open;
}

/** Calls `fn` every `ms` while the component is shown (the fallback when live events are unavailable). */
export function useInterval(fn: () => void, ms: number | null): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (ms === null) return undefined;
    const id = setInterval(() => ref.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

/**
 * `fn` called at most once every `ms`: a call within `ms` of the last run is held back and runs (once, however
 * many came) when that time is up. `cancel` drops a held-back run. For bursts of live events.
 */
export function throttle(fn: () => void, ms: number): { call(): void; cancel(): void } {
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = () => {
    timer = undefined;
    last = performance.now();
    fn();
  };
  return {
    call() {
      if (timer !== undefined) return;
      const wait = last + ms - performance.now();
      if (wait <= 0) run();
      else timer = setTimeout(run, wait);
    },
    cancel() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** `throttle` for a component: calls its latest `fn`, and nothing runs after the component is gone. */
export function useThrottled(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const t = useMemo(() => throttle(() => ref.current(), ms), [ms]);
  useEffect(() => () => t.cancel(), [t]);
  return t.call;
}

/** Registers the 401 handler once. */
export function useUnauthorized(fn: () => void): void {
  useEffect(() => setUnauthorizedHandler(fn), [fn]);
}
