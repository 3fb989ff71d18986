// The live event feed on `GET /api/topology/subscribe`.
//
// Without a read token it is the browser's own EventSource, which resumes by itself
// with Last-Event-ID (the version of the last whole change set it received). With a
// token it is the same stream read through fetch (sse.js), since EventSource cannot
// send an Authorization header and the server takes tokens from that header only.

import { authHeaders, readToken } from './api.js';
import { fetchEventSource } from './sse.js';

export const EVENT_TYPES = [
  'NodeJoin', 'NodeLeave', 'NodeHealthChange', 'ShardAdd', 'ShardRemove',
  'ShardMove', 'ShardSplit', 'ShardMerge', 'LeaderChange', 'ConfigChange',
];

/**
 * Subscribes after version `resumeFrom()` (asked again whenever a stream has to be
 * opened from scratch). `handlers`: `event(e)`, `reset(snapshot)`, `progress(version)`,
 * `state(name, detail)` with 'connecting', 'live', 'reconnecting' or 'refused'.
 * Returns `{ close(), kind }`.
 */
export function openFeed(resumeFrom, handlers) {
  const url = () => `/api/topology/subscribe?sinceVersion=${resumeFrom()}`;
  const message = (type, data) => {
    const parsed = JSON.parse(data);
    if (type === 'Reset') handlers.reset(parsed);
    else if (type === 'Progress') handlers.progress(parsed.version);
    else handlers.event(parsed);
  };
  handlers.state('connecting');
  if (readToken()) {
    const stream = fetchEventSource(url(), authHeaders, { onMessage: message, onState: handlers.state });
    return { close: () => stream.close(), kind: 'fetch stream (token)' };
  }
  return openEventSource(url, message, handlers.state);
}

function openEventSource(url, message, state) {
  let source = null;
  let reopen = null;
  const open = () => {
    source = new EventSource(url());
    for (const type of [...EVENT_TYPES, 'Reset', 'Progress']) {
      source.addEventListener(type, (m) => message(type, m.data));
    }
    source.onopen = () => state('live');
    source.onerror = () => {
      // CONNECTING: the browser retries by itself (Last-Event-ID). CLOSED: the server
      // refused the stream (e.g. 503 while loading, 401): open a new one later.
      if (source.readyState === EventSource.CLOSED) {
        state('reconnecting');
        reopen = setTimeout(open, 2000);
      } else {
        state('reconnecting');
      }
    };
  };
  open();
  return {
    close() {
      clearTimeout(reopen);
      source.close();
    },
    kind: 'EventSource',
  };
}
