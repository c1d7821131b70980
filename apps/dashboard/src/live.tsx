import { useQueryClient } from '@tanstack/react-query';
import { createParser } from 'eventsource-parser';
import { useEffect, useState } from 'react';
import { session } from './api/client';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

/** Which queries each topic of GET /live touches (query keys start with these). */
const TOUCHES: Record<string, string[]> = {
  fleet: ['fleet', 'rollouts', 'rollout', 'blocklists', 'blocklist', 'audit', 'tokens', 'hosts', 'host'],
  hosts: ['hosts', 'host', 'fleet', 'rollout', 'rollouts'],
  blocks: ['events', 'aggregate', 'run', 'host-events'],
};

/**
 * Follows the server's Server-Sent Events stream (GET /live) with fetch, so
 * the token goes in the Authorization header as on every other request, and
 * refetches the queries a change touches. Reconnects with backoff (1 s
 * doubling to 30 s). On each connection the server sends "ready" once its
 * watcher's marks cover everything committed so far; the page refetches then,
 * so a change made while it loaded or was away is not missed.
 */
export function useLive(): LiveState {
  const qc = useQueryClient();
  const [state, setState] = useState<LiveState>('connecting');
  useEffect(() => {
    const stop = new AbortController();
    let delay = 1000;
    const run = async () => {
      while (!stop.signal.aborted) {
        try {
          const res = await fetch('/live', { headers: { Authorization: `Bearer ${session.token ?? ''}`, Accept: 'text/event-stream' }, signal: stop.signal });
          if (res.status === 401) {
            window.dispatchEvent(new CustomEvent('cgfence:unauthorized'));
            return;
          }
          if (!res.ok || !res.body) throw new Error(`live: HTTP ${res.status}`);
          setState('live');
          delay = 1000;
          const parser = createParser({
            onEvent(ev) {
              // ready: from now on every change is told; refetch what may have changed before.
              if (ev.event === 'ready') void qc.invalidateQueries();
              if (ev.event !== 'change') return;
              const { topics } = JSON.parse(ev.data) as { topics: string[] };
              const keys = new Set(topics.flatMap((t) => TOUCHES[t] ?? []));
              void qc.invalidateQueries({ predicate: (q) => keys.has(String(q.queryKey[0])) });
            },
          });
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(value);
          }
        } catch {
          if (stop.signal.aborted) return;
        }
        setState('reconnecting');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    };
    void run();
    return () => stop.abort();
  }, [qc]);
  return state;
}
