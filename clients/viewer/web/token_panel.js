// Token selection in the generated text (click, arrow keys) and the routing panel of the selected
// or latest token: its chosen experts per layer with weights, pools and gate probabilities.

import { expertColor } from './diagram.js';
import { setSource, showStep } from './network.js';
import { hoverProfile, pinProfile } from './profiles.js';
import { state } from './state.js';
import { $, el, plainText, poolPill } from './util.js';

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

/** Binds token clicks in #output and the arrow keys that move the selection. */
export function initTokenPanel() {
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
}

/** Shows token t's routing; pinned = t is the selected token rather than the latest. */
export function renderPanel(t, pinned) {
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
