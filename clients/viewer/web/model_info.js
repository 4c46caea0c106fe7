// The model's description from /api/info (header, placement of experts on pools), which sizes the
// diagrams and load bars, and the router policy form (/api/policy).

import * as api from './api.js';
import { buildLoadBars, renderLoad } from './live.js';
import { buildLayerViews } from './network.js';
import { state } from './state.js';
import { $, el, fmtCount, poolPill, ranges, showError } from './util.js';

/** Fetches /api/info and rebuilds what depends on the model; retries every 3 s until it answers. */
export async function loadInfo() {
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

/**
 * Shows the placement: its epoch, each layer's balancedness, and per pool its health, slots,
 * the experts it hosts (and is loading) per layer and its share of each layer's tokens. Called
 * at load and again for every placement event, so the panel follows changes live.
 */
export function renderPlacement(placement) {
  const pools = placement?.pools || [];
  if (!pools.length) { $('placement').textContent = 'No placement reported.'; return; }
  const layers = placement.layers || [];
  // Share of each layer's computed tokens per pool: a replicated expert's pools split its load.
  const totals = [];
  for (const p of pools) (p.layer_tokens || []).forEach((t, l) => { totals[l] = (totals[l] || 0) + Number(t); });
  // Replicated experts: how many pools host each (layer, expert), and the tokens of all of them.
  const replicas = new Map(), expertTotals = new Map();
  for (const p of pools) {
    for (const h of p.hosts || []) {
      (h.experts || []).forEach((e, i) => {
        const key = `${h.layer ?? 0}/${e}`;
        replicas.set(key, (replicas.get(key) || 0) + 1);
        expertTotals.set(key, (expertTotals.get(key) || 0) + Number((h.expert_tokens || [])[i] ?? 0));
      });
    }
  }
  const head = el('div', { className: 'placement-head muted' },
    el('span', { textContent: `epoch ${placement.epoch ?? '?'}` }),
    ...layers.map((l) => el('span', { className: 'kv', textContent: ` · L${l.layer ?? 0} balance ${Number(l.balancedness ?? 1).toFixed(2)}` })));
  $('placement').replaceChildren(head, ...pools.map((p) => {
    // Group the hosts by their expert sets: "L0-3 · E0-3 · S0".
    const groups = new Map();
    for (const h of p.hosts || []) {
      const key = `${ranges(h.experts || [])}|${ranges(h.shared || [])}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(h.layer ?? 0);
    }
    const lines = [...groups].map(([key, ls]) => {
      const [e, s] = key.split('|');
      return el('div', { className: 'hosts', textContent: `L${ranges(ls)} · experts ${e}${s !== '—' ? ` · shared ${s}` : ''}` });
    });
    const loading = (p.loading || []).filter((h) => (h.experts || []).length + (h.shared || []).length > 0);
    if (loading.length) {
      lines.push(el('div', { className: 'hosts muted', textContent: `loading ${loading.map((h) => `L${h.layer ?? 0}: ${ranges(h.experts || [])}`).join(' · ')}` }));
    }
    const replicated = [];
    for (const h of p.hosts || []) {
      (h.experts || []).forEach((e, i) => {
        const key = `${h.layer ?? 0}/${e}`;
        if ((replicas.get(key) || 0) < 2) return;
        const total = expertTotals.get(key) || 0;
        const mine = Number((h.expert_tokens || [])[i] ?? 0);
        replicated.push(`L${h.layer ?? 0} E${e} ${total > 0 ? `${Math.round((100 * mine) / total)}%` : '–'}`);
      });
    }
    if (replicated.length) lines.push(el('div', { className: 'hosts', textContent: `replicas (its share) ${replicated.join(' · ')}` }));
    const shares = (p.layer_tokens || []).map((t, l) => (totals[l] > 0 ? `L${l} ${Math.round((100 * Number(t)) / totals[l])}%` : null)).filter(Boolean);
    if (shares.length) lines.push(el('div', { className: 'hosts muted', textContent: `token share ${shares.join(' · ')}` }));
    const flags = [p.address, p.device || '?', Number(p.expert_slots) > 0 ? `${p.expert_slots} slots` : null, p.draining ? 'draining' : null].filter(Boolean);
    return el('div', { className: 'pool-card' },
      el('div', {},
        el('span', { className: `dot ${p.healthy ? 'ok' : 'bad'}`, title: p.healthy ? 'healthy' : 'unhealthy' }),
        poolPill(p.name), el('span', { className: 'muted', textContent: ` ${flags.join(' · ')}` })),
      ...lines);
  }));
}

export async function loadPolicy() {
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

/** Binds the policy form's Apply. */
export function initPolicy() {
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
}
