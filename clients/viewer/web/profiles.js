// The expert profile card: what the checkpoint's expert_profiles.json says about the expert under
// the pointer, or the pinned one.

import { expertColor } from './diagram.js';
import { state } from './state.js';
import { $, el, visibleText } from './util.js';

const pct = (v) => `${(Number(v || 0) * 100).toFixed(1)}%`;
const lift = (v) => (v == null ? '' : `${Number(v).toFixed(2)}×`);

// Told which expert the card shows ({layer, expert, shared} or null), so the diagrams outline it.
let onShown = () => {};
export function onProfileShown(fn) {
  onShown = fn;
}

function profileOf(layer, expert) {
  const L = state.profiles?.layers?.find((l) => l.layer === layer) ?? state.profiles?.layers?.[layer];
  return L?.experts?.find((e) => e.expert === expert) ?? null;
}

export function hoverProfile(key) {
  renderProfile(key || state.pinned);
}

export function pinProfile(key) {
  const same = state.pinned && key && state.pinned.layer === key.layer && state.pinned.expert === key.expert;
  state.pinned = same ? null : key;
  $('profile-pin').textContent = state.pinned ? 'pinned · click it again to unpin' : '';
  renderProfile(state.pinned);
}

function renderProfile(key) {
  onShown(key);
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
