// Live traffic from /api/events: per-layer queues of routed tokens for the diagrams, and the
// expert load bars (live snapshots, or this generation's counts).

import * as api from './api.js';
import { expertColor } from './diagram.js';
import { normRouting } from './normalize.js';
import { hoverProfile, pinProfile } from './profiles.js';
import { state } from './state.js';
import { $, balance, el } from './util.js';

function onLiveToken(raw) {
  const ev = { ...normRouting(raw, 0, state.model.granularity), position: raw.position ?? 0, text: raw.text ?? '', is_prompt: !!raw.is_prompt };
  const q = state.live.queues[ev.layer];
  if (!q) return;
  q.push(ev);
  if (q.length > 64) q.splice(0, q.length - 64); // keep the newest; playback runs at FPS
}

function onLoad(raw) {
  const snap = {
    ...raw, tokens_per_second: Number(raw.tokens_per_second ?? 0), interval_ms: Number(raw.interval_ms ?? 0),
    layers: (raw.layers || []).map((l, i) => ({ ...l, layer: l.layer ?? i, tokens: (l.tokens || []).map(Number) })),
  };
  state.live.load = snap;
  if (snap.layers?.some((l) => l.tokens?.some((c) => c > 0))) state.live.lastBusy = snap;
  if (state.loadSource === 'live') renderLoad();
}

const loadRows = [];

/** (Re)builds one row of bars per layer for state.model. */
export function buildLoadBars() {
  const m = state.model;
  loadRows.length = 0;
  $('load-bars').replaceChildren(...Array.from({ length: m.n_layers }, (_, l) => {
    const bars = Array.from({ length: m.n_experts }, (_, e) => {
      const segs = Array.from({ length: m.granularity }, (_, j) => el('i', { style: `opacity:${1 - (0.45 * j) / m.granularity}` }));
      const bar = el('div', { className: 'bar', style: `--c:${expertColor(e, m.n_experts)}` }, el('div', { className: 'micros' }, ...segs));
      bar.addEventListener('mouseenter', () => hoverProfile({ layer: l, expert: e }));
      bar.addEventListener('mouseleave', () => hoverProfile(null));
      bar.addEventListener('click', () => pinProfile({ layer: l, expert: e }));
      return bar;
    });
    const stats = el('span', { className: 'stats' });
    const mean = el('div', { className: 'mean', title: 'uniform share' });
    loadRows.push({ bars, stats, mean });
    return el('div', { className: 'load-row' }, el('span', { className: 'layer-label', textContent: `L${l}` }),
      el('div', { className: 'bars' }, mean, ...bars), stats);
  }));
}

export function renderLoad() {
  const m = state.model, live = state.loadSource === 'live';
  const snap = live ? state.live.load : null;
  const idle = live && snap && state.live.lastBusy !== snap;
  const src = live ? state.live.lastBusy : null;
  if (live) {
    $('load-meta').textContent = snap
      ? `${(snap.tokens_per_second ?? 0).toFixed(1)} tokens/s · interval ${snap.interval_ms} ms${idle ? ' · idle (showing last busy interval)' : ''}${state.live.dropped ? ` · ${state.live.dropped} events dropped` : ''}`
      : 'waiting for load snapshots…';
  } else {
    $('load-meta').textContent = `accumulated over the ${state.gen.tokens.length} tokens of this generation`;
  }
  $('load-bars').classList.toggle('stale', !!idle);
  loadRows.forEach((row, l) => {
    let counts, cv, mm;
    if (live) {
      const L = src?.layers?.find((x) => x.layer === l);
      counts = L?.tokens || [];
      ({ cv, mm } = balance(Float64Array.from({ length: m.n_experts * m.granularity }, (_, i) => counts[i] || 0), m.granularity));
      if (L?.cv != null) cv = L.cv;
      if (L?.max_over_mean != null) mm = L.max_over_mean;
    } else {
      counts = state.genLoad[l] || [];
      ({ cv, mm } = balance(Float64Array.from({ length: m.n_experts * m.granularity }, (_, i) => counts[i] || 0), m.granularity));
    }
    let max = 0, total = 0;
    const base = row.bars.map((_, e) => {
      let s = 0;
      for (let j = 0; j < m.granularity; j++) s += counts[e * m.granularity + j] || 0;
      max = Math.max(max, s);
      total += s;
      return s;
    });
    row.bars.forEach((bar, e) => {
      const segs = bar.firstChild.children;
      for (let j = 0; j < m.granularity; j++) segs[j].style.height = max ? `${(100 * (counts[e * m.granularity + j] || 0)) / max}%` : '0';
      bar.title = `E${e}: ${base[e]} tokens${total ? ` (${((100 * base[e]) / total).toFixed(1)}%)` : ''}`;
    });
    row.mean.style.bottom = max ? `${(100 * total) / m.n_experts / max}%` : '0';
    row.mean.hidden = !max;
    row.stats.textContent = `CV ${cv.toFixed(2)} · max/mean ${mm.toFixed(2)}`;
  });
}

/**
 * Binds the load source switch and subscribes to /api/events; `onPlacement` gets each new
 * placement the router reports (a rebalance, a drain, a pool that joined or came back).
 */
export function startLive({ onPlacement } = {}) {
  $('load-source').addEventListener('click', (ev) => {
    if (!ev.target.dataset.src) return;
    state.loadSource = ev.target.dataset.src;
    for (const b of $('load-source').children) b.classList.toggle('active', b === ev.target);
    renderLoad();
  });

  api.watchEvents({
    onLoad,
    onToken: onLiveToken,
    onDropped: (d) => { state.live.dropped = Number(d.dropped ?? 0); },
    onState: (s) => { $('live-state').textContent = s; $('live-state').className = `pill ${s}`; },
    onPlacement,
  });
}
