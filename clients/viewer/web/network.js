// The network diagrams of the live tab: one layer large or every layer small, showing the routing
// of this generation's tokens or of live traffic, one step at a time.

import { Diagram } from './diagram.js';
import { hoverProfile, pinProfile } from './profiles.js';
import { state } from './state.js';
import { $, el, plainText } from './util.js';

const PROMPT_COLOR = '#c297ff', GEN_COLOR = '#56d364';

const diagrams = { main: null, grid: [] };
const allDiagrams = () => [diagrams.main, ...diagrams.grid].filter(Boolean);
const diagramOpts = (compact) => ({
  compact,
  onHover: (hit) => hoverProfile(hit),
  onClick: (hit) => pinProfile(hit),
});

/** Outlines base expert key.expert in its layer's diagrams; key null or shared clears it. */
export function highlightExpert(key) {
  for (const d of allDiagrams()) d.highlight = key && key.layer === d.cfg.layer && !key.shared ? key.expert : null;
}

/** (Re)builds the diagrams and layer tabs for state.model. */
export function buildLayerViews() {
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

export const visibleDiagrams = () => (state.view === 'all' ? diagrams.grid : diagrams.main ? [diagrams.main] : []);

export function setSource(src) {
  state.source = src;
  for (const b of $('source').children) b.classList.toggle('active', b.dataset.src === src);
}

/** Binds the "this generation / live traffic" switch. */
export function initNetwork() {
  $('source').addEventListener('click', (ev) => { if (ev.target.dataset.src) { setSource(ev.target.dataset.src); showStep(true); } });
}

/** Shows one routing step in the visible diagrams; hold = redraw the current step, don't advance. */
export function showStep(hold = false) {
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
