// The viewer's JSON / server-sent-events API (same origin as the page).

/** Error carrying the server's {code, message}. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function errorFrom(res) {
  const body = await res.text();
  try {
    const j = JSON.parse(body);
    return new ApiError(j.code || res.status, j.message || j.error || body);
  } catch {
    return new ApiError(res.status, body.trim() || res.statusText);
  }
}

async function getJson(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

export const getInfo = () => getJson('/api/info');
export const getPolicy = () => getJson('/api/policy');

export async function setPolicy(policy) {
  const res = await fetch('/api/policy', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(policy),
  });
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

/** JSON.stringify that writes BigInt values (a uint64 seed) as plain JSON numbers, every digit kept. */
function toJson(obj) {
  return JSON.stringify(obj, (k, v) => (typeof v === 'bigint' ? `\u0000big:${v}` : v))
    .replace(/"\\u0000big:(\d+)"/g, '$1');
}

/** Splits a text/event-stream byte stream into {event, data} messages. */
async function* sseMessages(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue; // comment / keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) yield { event, data: data.join('\n') };
    }
  }
}

/**
 * POST /api/generate and stream its events. Handlers: onToken(msg), onDone(msg), onError(ApiError).
 * Returns once the stream ends; abort with signal.
 */
export async function generate(params, { onToken, onDone, onError, signal }) {
  let res;
  try {
    res = await fetch('/api/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: toJson(params),
      signal,
    });
  } catch (e) {
    if (e.name !== 'AbortError') onError(new ApiError('NETWORK', e.message));
    return;
  }
  if (!res.ok) {
    onError(await errorFrom(res));
    return;
  }
  let finished = false;
  try {
    for await (const m of sseMessages(res.body)) {
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        continue;
      }
      if (m.event === 'token') onToken(data);
      else if (m.event === 'done') { finished = true; onDone(data); }
      else if (m.event === 'error') { finished = true; onError(new ApiError(data.code, data.message)); }
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    finished = true;
    onError(new ApiError('NETWORK', e.message));
  }
  if (!finished && !signal?.aborted) onError(new ApiError('NETWORK', 'stream ended without a done event'));
}

/** Subscribes to /api/events (live routing of every request). Returns the EventSource. */
export function watchEvents({ onLoad, onToken, onDropped, onState, onPlacement }) {
  const es = new EventSource('/api/events');
  const parse = (fn) => (ev) => {
    try {
      fn(JSON.parse(ev.data));
    } catch { /* ignore a malformed message */ }
  };
  es.addEventListener('load', parse(onLoad));
  es.addEventListener('token', parse(onToken));
  es.addEventListener('dropped', parse(onDropped));
  if (onPlacement) es.addEventListener('placement', parse(onPlacement));
  es.onopen = () => onState('live');
  es.onerror = () => onState(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
  return es;
}
