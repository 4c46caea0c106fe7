// Running a prompt: the prompt form, the generation stream of /api/generate, the generated text
// and its statistics.

import * as api from './api.js';
import { renderLoad } from './live.js';
import { normToken } from './normalize.js';
import { state } from './state.js';
import { renderPanel } from './token_panel.js';
import { $, el, showError, visibleText } from './util.js';

const EXAMPLES = [
  'The jury said that the city',
  'In the morning the children',
  'The president of the United States',
  'She looked at him and said',
  'The results of the experiment show',
];

function readParams() {
  const p = { prompt: $('prompt').value };
  const num = (id, key) => { const v = $(id).value.trim(); if (v !== '') p[key] = Number(v); };
  num('max-tokens', 'max_tokens');
  num('temperature', 'temperature');
  num('top-k', 'top_k');
  num('top-p', 'top_p');
  const seed = $('seed').value.trim();
  if (seed !== '') p.seed = /^\d+$/.test(seed) ? BigInt(seed) : seed; // uint64: keep every digit
  // The sampling controls go only when they differ from their defaults (off).
  const other = (id, key, neutral) => { const v = $(id).value.trim(); if (v !== '' && Number(v) !== neutral) p[key] = Number(v); };
  other('n', 'n', 1);
  other('presence-penalty', 'presence_penalty', 0);
  other('frequency-penalty', 'frequency_penalty', 0);
  other('repetition-penalty', 'repetition_penalty', 1);
  other('logprobs', 'logprobs', NaN);
  const stop = $('stop').value;
  if (stop !== '') p.stop = parseStop(stop);
  return p;
}

/** A JSON list of stop sequences, or one sequence with JSON escapes (\n) read as such. */
function parseStop(s) {
  if (s.trim().startsWith('[')) {
    try { return JSON.parse(s); } catch { return s; }
  }
  try { return JSON.parse(`"${s.replaceAll('"', '\\"')}"`); } catch { return s; }
}

/** "logprob -1.23 · top: the -0.5, a -1.1" for a token's tooltip. */
function logprobText(lp) {
  if (!lp) return '';
  const top = (lp.top || []).map((a) => `${JSON.stringify(a.token)} ${Number(a.logprob).toFixed(2)}`).join(', ');
  return ` · logprob ${Number(lp.logprob ?? 0).toFixed(3)}${top ? ` · top: ${top}` : ''}`;
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
  $('more-completions').replaceChildren();
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
    onToken: (t) => gen === state.gen && addToken(normToken(t, state.model.granularity)),
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
  if ((t.index ?? 0) > 0) {
    // Completions after the first (n > 1): their text, each on its own line.
    if (t.is_prompt) return;
    const id = `completion-${t.index}`;
    let line = document.getElementById(id);
    if (!line) {
      line = el('div', { id, className: 'completion' }, el('b', {}, `[${t.index}] `));
      $('more-completions').append(line);
    }
    line.append(el('span', { title: `id ${t.token_id}${logprobText(t.logprobs)}` }, t.text));
    return;
  }
  gen.tokens.push(t);
  gen.byPos.set(t.position, t);
  const cls = t.is_prompt ? 'prompt' : 'generated';
  const span = el('span', {
    className: `token ${cls}`,
    title: `position ${t.position} · id ${t.token_id}${logprobText(t.logprobs)}`,
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

/** Binds Run, Stop, Ctrl+Enter in the prompt and the example prompts. */
export function initGenerate() {
  $('run').addEventListener('click', run);
  $('stop').addEventListener('click', () => { state.gen.abort?.abort(); finish('stopped'); });
  $('prompt').addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) run(); });
  $('examples').append(...EXAMPLES.map((p) => el('button', {
    className: 'chip', textContent: p, onclick: () => { $('prompt').value = p; },
  })));
}
