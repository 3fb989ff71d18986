// Server-Sent Events read through fetch(), for the one case EventSource cannot
// serve: a stream that needs an Authorization header (a read token). It follows the
// EventSource rules: `event:`/`data:`/`id:`/`retry:` fields, a blank line dispatches,
// reconnection after `retry` milliseconds with `Last-Event-ID`.

/**
 * Opens `url` and calls `onMessage(type, data)` per event, `onState(state, detail)`
 * with 'live', 'reconnecting' or 'refused' (then `detail` is {status, message}).
 * `headers()` is asked at each (re)connection. Returns `{ close() }`.
 */
export function fetchEventSource(url, headers, { onMessage, onState }) {
  const abort = new AbortController();
  let lastEventId = '';
  let retryMs = 1500;
  let closed = false;

  const dispatcher = () => {
    let type = '';
    let data = [];
    return (line) => {
      if (line === '') {
        if (data.length) onMessage(type || 'message', data.join('\n'));
        type = '';
        data = [];
        return;
      }
      if (line.startsWith(':')) return;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) lastEventId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
    };
  };

  const readOnce = async () => {
    const sent = { Accept: 'text/event-stream', ...headers() };
    if (lastEventId) sent['Last-Event-ID'] = lastEventId;
    const response = await fetch(url, { headers: sent, cache: 'no-store', signal: abort.signal });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        message = (await response.json()).message || message;
      } catch {
        // keep the status line
      }
      onState('refused', { status: response.status, message });
      return;
    }
    onState('live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const feedLine = dispatcher();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      const lines = buffered.split(/\r\n|\r|\n/);
      buffered = lines.pop();
      lines.forEach(feedLine);
    }
  };

  (async () => {
    while (!closed) {
      try {
        await readOnce();
      } catch (e) {
        if (closed) return;
      }
      if (closed) return;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();

  return {
    close() {
      closed = true;
      abort.abort();
    },
  };
}
