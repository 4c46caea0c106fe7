// The viewer page: generation with per-token routing, the network diagram, live expert load,
// expert profiles, placement and router policy. See api.js for the server API.

import * as api from './api.js';
import { Diagram, expertColor } from './diagram.js';
import { Playground } from './playground.js';

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) if (k != null) e.append(k);
  return e;
};

const EXAMPLES = [
  'The jury said that the city',
  'In the morning the children',
  'The president of the United States',
  'She looked at him and said',
  'The results of the experiment show',
];
const PROMPT_COLOR = '#c297ff', GEN_COLOR = '#56d364';
const POOL_COLORS = ['#58a6ff', '#f0883e', '#3fb950', '#db61a2', '#d29922', '#a5d6ff'];

const state = {
  model: { n_layers: 0, n_experts: 8, granularity: 1, n_shared: 0, top_k: 2 },
  profiles: null,
  poolColor: new Map(),
  gen: { tokens: [], byPos: new Map(), running: false, abort: null, started: 0 },
  genLoad: [],           // per layer: Float64Array(n_experts * m) token counts of this generation
  live: { queues: [], load: null, lastBusy: null, dropped: 0 },
  selected: null,        // selected token position
  cursor: -1,            // playback index into gen.tokens
  paused: false,
  source: 'generation',  // diagram source: 'generation' | 'live'
  loadSource: 'live',
  view: 0,               // diagram layer, or 'all'
  pinned: null,          // pinned profile {layer, expert}
  tab: 'live',
};

// ---------- small helpers ----------

const fmtCount = (n) => n >= 1e9 ? (n / 1e9).toFixed(2) + 'B' : n >= 1e6 ? (n / 1e6).toFixed(2) + 'M'
  : n >= 1e3 ? (n / 1e3).toFixed(1) + 'k' : String(n ?? '?');

/** Token text with whitespace shown subtly; returns a DocumentFragment. */
function visibleText(text) {
  const f = document.createDocumentFragment();
  if (!text) { f.append(el('span', { className: 'ws', textContent: '◌', title: 'partial character' })); return f; }
  for (const part of text.split(/([ \t\n])/)) {
    if (part === ' ') f.append(el('span', { className: 'ws', textContent: '·' }));
    else if (part === '\t') f.append(el('span', { className: 'ws', textContent: '→' }));
    else if (part === '\n') f.append(el('span', { className: 'ws', textContent: '↵' }), el('br'));
    else if (part) f.append(part);
  }
  return f;
}

const plainText = (text) => (text || '◌').replace(/ /g, '·').replace(/\n/g, '↵');

/** "0-3,6" from [0,1,2,3,6]. */
function ranges(list) {
  const s = [...new Set(list)].sort((a, b) => a - b), out = [];
  for (let i = 0; i < s.length; i++) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(j > i ? `${s[i]}-${s[j]}` : `${s[i]}`);
    i = j;
  }
  return out.join(',') || '—';
}

function poolColor(name) {
  if (!state.poolColor.has(name)) state.poolColor.set(name, POOL_COLORS[state.poolColor.size % POOL_COLORS.length]);
  return state.poolColor.get(name);
}
const poolPill = (name) => el('span', { className: 'pool', textContent: name || '?', style: `--pool:${poolColor(name)}` });

function showError(msg) {
  const e = $('error');
  e.hidden = !msg;
  e.textContent = msg || '';
}

function balance(counts, m) {
  const n = counts.length / m, base = new Float64Array(n);
  counts.forEach((c, i) => { base[Math.floor(i / m)] += c; });
  const mean = base.reduce((a, b) => a + b, 0) / n;
  if (!(mean > 0)) return { base, cv: 0, mm: 0 };
  const sd = Math.sqrt(base.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { base, cv: sd / mean, mm: Math.max(...base) / mean };
}

// Fills fields a protobuf-JSON writer may leave out (zero values), so 0 is never "undefined".
function normChoice(c) {
  const m = state.model.granularity || 1;
  const id = Number(c.id ?? (c.expert ?? 0) * m + (c.micro ?? 0));
  return { ...c, id, expert: c.expert ?? Math.floor(id / m), micro: c.micro ?? id % m, weight: Number(c.weight ?? 0) };
}
const normShared = (list) => (list || []).map((s) => ({ ...s, expert: s.expert ?? 0 }));
const normRouting = (r, i) => ({ ...r, layer: r.layer ?? i, experts: (r.experts || []).map(normChoice), shared: normShared(r.shared) });
const normToken = (t) => ({
  ...t, position: t.position ?? 0, text: t.text ?? '', is_prompt: !!t.is_prompt,
  routing: (t.routing || []).map(normRouting),
});

// ---------- model info, placement, policy ----------

async function loadInfo() {
  try {
    const info = await api.getInfo();
    state.model = { ...state.model, ...info.model };
    state.profiles = info.profiles || null;
    renderModelInfo(info.model);
    renderPlacement(info.placement);
    buildLayerViews();
    buildLoadBars();
    renderLoad();
    showError('');
  } catch (e) {
    showError(`Cannot load model info: ${e.message}. Retrying…`);
    setTimeout(loadInfo, 3000);
  }
}

function renderModelInfo(m) {
  const items = [
    ['model', m.name], ['params', fmtCount(m.parameters)], ['active', fmtCount(m.active_parameters)],
    ['layers', m.n_layers], ['experts', m.n_experts], ['top-k', m.top_k], ['m', m.granularity],
    ['shared', m.n_shared], ['d_model', m.d_model], ['context', m.context_length],
  ];
  $('model-info').replaceChildren(...items.map(([k, v]) => el('span', { className: 'kv' },
    el('span', { className: 'k', textContent: k }), el('b', { textContent: v ?? '?' }))));
}

function renderPlacement(placement) {
  const pools = placement?.pools || [];
  if (!pools.length) { $('placement').textContent = 'No placement reported.'; return; }
  $('placement').replaceChildren(...pools.map((p) => {
    // Group the hosts by their expert sets: "L0-3 · E0-3 · S0".
    const groups = new Map();
    for (const h of p.hosts || []) {
      const key = `${ranges(h.experts || [])}|${ranges(h.shared || [])}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(h.layer);
    }
    const lines = [...groups].map(([key, layers]) => {
      const [e, s] = key.split('|');
      return el('div', { className: 'hosts', textContent: `L${ranges(layers)} · experts ${e}${s !== '—' ? ` · shared ${s}` : ''}` });
    });
    return el('div', { className: 'pool-card' },
      el('div', {},
        el('span', { className: `dot ${p.healthy ? 'ok' : 'bad'}`, title: p.healthy ? 'healthy' : 'unhealthy' }),
        poolPill(p.name), el('span', { className: 'muted', textContent: ` ${p.address} · ${p.device || '?'}` })),
      ...lines);
  }));
}

async function loadPolicy() {
  try {
    fillPolicy(await api.getPolicy());
  } catch (e) {
    $('policy-state').textContent = `policy unavailable: ${e.message}`;
  }
}

function fillPolicy(p) {
  const f = $('policy-form');
  for (const k of ['top_k', 'noise_std', 'capacity_factor']) if (p[k] != null) f.elements[k].value = p[k];
  $('policy-state').textContent = `in force: top-k ${p.top_k ?? '?'} · noise ${p.noise_std ?? '?'} · capacity ${p.capacity_factor ?? '?'}`;
}

$('policy-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target, body = {};
  for (const k of ['top_k', 'noise_std', 'capacity_factor']) if (f.elements[k].value !== '') body[k] = Number(f.elements[k].value);
  try {
    fillPolicy(await api.setPolicy(body));
    showError('');
  } catch (e) {
    showError(`Policy refused (${e.code}): ${e.message}`);
  }
});

// ---------- generation ----------

function readParams() {
  const p = { prompt: $('prompt').value };
  const num = (id, key) => { const v = $(id).value.trim(); if (v !== '') p[key] = Number(v); };
  num('max-tokens', 'max_tokens');
  num('temperature', 'temperature');
  num('top-k', 'top_k');
  num('top-p', 'top_p');
  const seed = $('seed').value.trim();
  if (seed !== '') p.seed = /^\d+$/.test(seed) ? BigInt(seed) : seed; // uint64: keep every digit
  return p;
}

function setStatus(s) {
  $('status').textContent = s;
  $('status').className = s;
}

function resetGeneration() {
  const m = state.model;
  state.gen = { tokens: [], byPos: new Map(), running: true, abort: new AbortController(), started: performance.now() };
  state.genLoad = Array.from({ length: m.n_layers }, () => new Float64Array(m.n_experts * m.granularity));
  state.selected = null;
  state.cursor = -1;
  $('output').replaceChildren();
  $('expert-panel').replaceChildren();
  $('panel-token').textContent = '';
  $('gen-stats').textContent = '';
}

async function run() {
  state.gen.abort?.abort();
  showError('');
  const params = readParams();
  resetGeneration();
  setStatus('running');
  $('run').disabled = true;
  $('stop').disabled = false;
  const gen = state.gen;
  await api.generate(params, {
    signal: gen.abort.signal,
    onToken: (t) => gen === state.gen && addToken(normToken(t)),
    onDone: (d) => {
      if (gen !== state.gen) return;
      finish('done');
      $('gen-stats').textContent += ` · ${d.finish_reason || 'finished'}`;
    },
    onError: (e) => {
      if (gen !== state.gen) return;
      finish('error');
      showError(`Generation failed (${e.code}): ${e.message}`);
    },
  });
}

function finish(status) {
  state.gen.running = false;
  $('run').disabled = false;
  $('stop').disabled = true;
  setStatus(status);
}

function addToken(t) {
  const gen = state.gen;
  gen.tokens.push(t);
  gen.byPos.set(t.position, t);
  const cls = t.is_prompt ? 'prompt' : 'generated';
  const span = el('span', {
    className: `token ${cls}`,
    title: `position ${t.position} · id ${t.token_id}`,
  }, visibleText(t.text));
  span.dataset.position = t.position;
  span.dataset.text = t.text ?? '';
  $('output').append(span);
  for (const r of t.routing || []) {
    const counts = state.genLoad[r.layer];
    if (counts) for (const c of r.experts) counts[c.id] = (counts[c.id] || 0) + 1;
  }
  $('output').scrollTop = $('output').scrollHeight;
  const now = performance.now();
  if (!t.is_prompt) gen.firstGen ??= now;
  const nPrompt = gen.tokens.filter((x) => x.is_prompt).length, nGen = gen.tokens.length - nPrompt;
  let stats = `${nPrompt} prompt + ${nGen} generated`;
  if (gen.firstGen) stats += ` · first token ${(gen.firstGen - gen.started).toFixed(0)} ms`;
  if (nGen > 1) stats += ` · ${((now - gen.firstGen) / (nGen - 1)).toFixed(1)} ms/token`;
  $('gen-stats').textContent = stats;
  if (state.selected == null) renderPanel(t, false);
  if (state.loadSource === 'generation') renderLoad();
}

$('run').addEventListener('click', run);
$('stop').addEventListener('click', () => { state.gen.abort?.abort(); finish('stopped'); });
$('prompt').addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) run(); });
$('examples').append(...EXAMPLES.map((p) => el('button', {
  className: 'chip', textContent: p, onclick: () => { $('prompt').value = p; },
})));

// ---------- token selection and the expert panel ----------

function select(pos) {
  state.selected = state.selected === pos ? null : pos;
  for (const s of $('output').querySelectorAll('.token.selected')) s.classList.remove('selected');
  const t = state.gen.byPos.get(state.selected ?? -1);
  if (t) {
    $('output').querySelector(`.token[data-position="${pos}"]`)?.classList.add('selected');
    renderPanel(t, true);
    setSource('generation');
  } else if (state.gen.tokens.length) {
    renderPanel(state.gen.tokens[state.gen.tokens.length - 1], false);
  }
  showStep(true);
}

$('output').addEventListener('click', (ev) => {
  const span = ev.target.closest('.token');
  if (span) select(Number(span.dataset.position));
});
document.addEventListener('keydown', (ev) => {
  if (state.selected == null || ev.target.matches('input, textarea')) return;
  const i = state.gen.tokens.findIndex((t) => t.position === state.selected);
  const j = ev.key === 'ArrowRight' ? i + 1 : ev.key === 'ArrowLeft' ? i - 1 : -1;
  if (j >= 0 && j < state.gen.tokens.length) { ev.preventDefault(); select(state.gen.tokens[j].position); }
});

function renderPanel(t, pinned) {
  const m = state.model;
  $('panel-token').replaceChildren(
    el('span', { className: `tok ${t.is_prompt ? 'prompt' : 'generated'}`, textContent: plainText(t.text) }),
    ` position ${t.position} · ${t.is_prompt ? 'prompt' : 'generated'}${pinned ? '' : ' · latest (click a token to pin)'}`);
  const rows = (t.routing || []).map((r) => {
    const row = el('div', { className: 'layer-row' }, el('span', { className: 'layer-label', textContent: `L${r.layer}` }));
    row.dataset.layer = r.layer;
    for (const c of r.experts) {
      const chip = el('div', { className: 'chosen-expert', style: `--c:${expertColor(c.expert, m.n_experts)}` },
        el('span', { className: 'swatch' }),
        el('b', { textContent: m.granularity > 1 ? `E${c.expert}.${c.micro}` : `E${c.expert}` }),
        el('span', { className: 'wbar' }, el('i', { style: `width:${(c.weight * 100).toFixed(1)}%` })),
        el('span', { className: 'num', textContent: c.weight.toFixed(3) }),
        poolPill(c.pool));
      Object.assign(chip.dataset, { expert: c.expert, micro: c.micro, weight: c.weight, pool: c.pool });
      chip.addEventListener('mouseenter', () => hoverProfile({ layer: r.layer, expert: c.expert }));
      chip.addEventListener('mouseleave', () => hoverProfile(null));
      chip.addEventListener('click', () => pinProfile({ layer: r.layer, expert: c.expert }));
      row.append(chip);
    }
    for (const s of r.shared || []) {
      const chip = el('div', { className: 'shared-expert', title: 'shared expert: sees every token' },
        el('b', { textContent: `S${s.expert}` }), el('span', { className: 'muted', textContent: 'always-on' }), poolPill(s.pool));
      chip.dataset.shared = s.expert;
      row.append(chip);
    }
    if (r.latency_ms != null) row.append(el('span', { className: 'latency', textContent: `${r.latency_ms.toFixed(2)} ms` }));
    if (r.probs?.length) row.append(probsStrip(r.probs));
    return row;
  });
  $('expert-panel').replaceChildren(...rows);
  $('expert-panel').dataset.position = t.position;
}

function probsStrip(probs) {
  const c = el('canvas', { className: 'probs', width: probs.length * 3, height: 18, title: 'gate probabilities' });
  const ctx = c.getContext('2d'), mx = Math.max(...probs), m = state.model;
  probs.forEach((p, i) => {
    ctx.fillStyle = expertColor(Math.floor(i / m.granularity), m.n_experts);
    const h = Math.max(1, (18 * p) / mx);
    ctx.fillRect(i * 3, 18 - h, 2, h);
  });
  return c;
}

// ---------- expert profiles ----------

const pct = (v) => `${(Number(v || 0) * 100).toFixed(1)}%`;
const lift = (v) => (v == null ? '' : `${Number(v).toFixed(2)}×`);

function profileOf(layer, expert) {
  const L = state.profiles?.layers?.find((l) => l.layer === layer) ?? state.profiles?.layers?.[layer];
  return L?.experts?.find((e) => e.expert === expert) ?? null;
}

function hoverProfile(key) {
  renderProfile(key || state.pinned);
}

function pinProfile(key) {
  const same = state.pinned && key && state.pinned.layer === key.layer && state.pinned.expert === key.expert;
  state.pinned = same ? null : key;
  $('profile-pin').textContent = state.pinned ? 'pinned · click it again to unpin' : '';
  renderProfile(state.pinned);
}

function renderProfile(key) {
  for (const d of allDiagrams()) d.highlight = key && key.layer === d.cfg.layer && !key.shared ? key.expert : null;
  const box = $('profile');
  if (!key) { box.className = 'profile muted'; box.textContent = 'Hover or click an expert in the diagram, the load bars or the routing panel.'; return; }
  box.className = 'profile';
  const title = el('div', { className: 'ptitle' },
    el('span', { className: 'swatch', style: `--c:${key.shared ? '#c9d1d9' : expertColor(key.expert, state.model.n_experts)}` }),
    el('b', { textContent: `Layer ${key.layer} · ${key.shared ? 'shared S' : 'expert E'}${key.expert}` }));
  if (key.shared) { box.replaceChildren(title, el('p', { className: 'muted', textContent: 'Shared expert: always on, it processes every token.' })); return; }
  if (!state.profiles) { box.replaceChildren(title, el('p', { className: 'muted', textContent: 'This model ships no expert profile (no expert_profiles.json in its checkpoint).' })); return; }
  const p = profileOf(key.layer, key.expert);
  if (!p) { box.replaceChildren(title, el('p', { className: 'muted', textContent: 'No profile for this expert.' })); return; }
  const table = (head, rows) => el('table', {}, el('tr', {}, ...head.map((h) => el('th', { textContent: h }))),
    ...rows.map((r) => el('tr', {}, ...r.map((v) => el('td', { textContent: v })))));
  box.replaceChildren(title,
    el('div', { className: 'share' }, `token share ${pct(p.token_share)}`,
      el('span', { className: 'wbar' }, el('i', { style: `width:${Math.min(100, (p.token_share || 0) * 100 * state.model.n_experts / 2)}%` })),
      el('span', { className: 'muted', textContent: ` (uniform ${(100 / state.model.n_experts).toFixed(1)}%)` })),
    el('div', { className: 'ptables' },
      table(['POS tag', 'lift', 'share'], (p.top_tags || []).map((t) => [t.tag, lift(t.lift), t.share != null ? pct(t.share) : ''])),
      table(['genre', 'lift'], (p.top_genres || []).map((g) => [g.genre, lift(g.lift)]))),
    el('div', { className: 'examples-tok' }, el('span', { className: 'muted', textContent: 'examples ' }),
      ...(p.examples || []).map((x) => el('span', { className: 'tok' }, visibleText(x)))));
}

// ---------- network diagrams ----------

const diagrams = { main: null, grid: [] };
const allDiagrams = () => [diagrams.main, ...diagrams.grid].filter(Boolean);
const diagramOpts = (compact) => ({
  compact,
  onHover: (hit) => hoverProfile(hit),
  onClick: (hit) => pinProfile(hit),
});

function buildLayerViews() {
  const m = state.model;
  const cfg = (layer) => ({ nExperts: m.n_experts, m: m.granularity, nShared: m.n_shared, layer, title: `Layer ${layer}` });
  diagrams.main ??= new Diagram($('diagram-main').querySelector('canvas'), diagramOpts(false));
  diagrams.main.configure(cfg(state.view === 'all' ? 0 : state.view));
  $('diagram-grid').replaceChildren();
  diagrams.grid = [];
  for (let l = 0; l < m.n_layers; l++) {
    const canvas = el('canvas', { className: 'diagram small' });
    $('diagram-grid').append(canvas);
    const d = new Diagram(canvas, diagramOpts(true));
    d.configure(cfg(l));
    diagrams.grid.push(d);
  }
  state.live.queues = Array.from({ length: m.n_layers }, () => []);
  const tabs = [...Array(m.n_layers).keys()].map((l) => el('button', { textContent: `L${l}`, onclick: () => setView(l) }));
  tabs.push(el('button', { textContent: 'All layers', onclick: () => setView('all') }));
  $('layer-tabs').replaceChildren(...tabs);
  setView(state.view);
}

function setView(v) {
  state.view = v;
  [...$('layer-tabs').children].forEach((b, i) => b.classList.toggle('active', i === (v === 'all' ? state.model.n_layers : v)));
  $('diagram-main').hidden = v === 'all';
  $('diagram-grid').hidden = v !== 'all';
  if (v !== 'all' && diagrams.main) {
    diagrams.main.configure({ layer: v, title: `Layer ${v}` });
    diagrams.main.setRouting(null); // the previous layer's routing no longer applies
  }
  showStep(true);
}

const visibleDiagrams = () => (state.view === 'all' ? diagrams.grid : diagrams.main ? [diagrams.main] : []);

function setSource(src) {
  state.source = src;
  for (const b of $('source').children) b.classList.toggle('active', b.dataset.src === src);
}
$('source').addEventListener('click', (ev) => { if (ev.target.dataset.src) { setSource(ev.target.dataset.src); showStep(true); } });

/** Shows one routing step in the visible diagrams; hold = redraw the current step, don't advance. */
function showStep(hold = false) {
  for (const s of $('output').querySelectorAll('.token.playing')) s.classList.remove('playing');
  if (state.source === 'live') {
    for (const d of visibleDiagrams()) {
      const q = state.live.queues[d.cfg.layer] || [];
      if (hold && d.routing) continue;
      const ev = q.shift();
      if (ev) d.setRouting(ev, { text: plainText(ev.text), color: ev.is_prompt ? PROMPT_COLOR : GEN_COLOR, sub: `req ${String(ev.request_id).slice(0, 8)} · pos ${ev.position}` });
    }
    return;
  }
  const toks = state.gen.tokens;
  let t = null;
  if (state.selected != null) t = state.gen.byPos.get(state.selected);
  else if (state.gen.running) t = toks[toks.length - 1];
  else if (toks.length) {
    if (!hold) state.cursor = (state.cursor + 1) % toks.length;
    t = toks[Math.max(0, state.cursor)];
  }
  if (!t) { for (const d of visibleDiagrams()) d.setRouting(null); return; }
  $('output').querySelector(`.token[data-position="${t.position}"]`)?.classList.add('playing');
  for (const d of visibleDiagrams()) {
    const r = (t.routing || []).find((x) => x.layer === d.cfg.layer) || null;
    d.setRouting(r, { text: plainText(t.text), color: t.is_prompt ? PROMPT_COLOR : GEN_COLOR, sub: `position ${t.position}` });
  }
}

// ---------- live events and load bars ----------

function onLiveToken(raw) {
  const ev = { ...normRouting(raw, 0), position: raw.position ?? 0, text: raw.text ?? '', is_prompt: !!raw.is_prompt };
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
function buildLoadBars() {
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

function renderLoad() {
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
});

// ---------- playback and tabs ----------

const fps = () => Number($('fps').value);
const flow = () => Number($('flow').value);
$('fps').addEventListener('input', () => { $('fps-out').textContent = fps(); });
$('flow').addEventListener('input', () => { $('flow-out').textContent = `${flow().toFixed(1)}×`; });
$('pause').addEventListener('click', () => {
  state.paused = !state.paused;
  $('pause').textContent = state.paused ? 'Resume' : 'Pause';
});

const playground = new Playground($('tab-playground'), { getFps: fps });

for (const b of document.querySelectorAll('.tab')) {
  b.addEventListener('click', () => {
    state.tab = b.dataset.tab;
    for (const x of document.querySelectorAll('.tab')) x.classList.toggle('active', x === b);
    $('tab-live').hidden = state.tab !== 'live';
    $('tab-playground').hidden = state.tab !== 'playground';
    if (state.tab === 'playground') requestAnimationFrame(() => playground.drawChart());
  });
}
window.addEventListener('resize', () => { if (state.tab === 'playground') playground.drawChart(); });

let last = performance.now(), lastStep = 0, flowClock = 0;
function frame(now) {
  const dt = Math.min(100, now - last);
  last = now;
  if (!state.paused) flowClock += (dt / 1000) * flow();
  if (state.tab === 'live') {
    if (!state.paused && now - lastStep >= 1000 / fps()) { lastStep = now; showStep(); }
    for (const d of visibleDiagrams()) d.draw(now, flowClock);
  } else if (!state.paused) {
    playground.tick(now, flowClock);
  } else {
    playground.diagram.draw(now, flowClock);
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

loadInfo();
loadPolicy();
