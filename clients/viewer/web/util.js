// Small DOM and formatting helpers of the viewer page; no page state.

export const $ = (id) => document.getElementById(id);
export const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) if (k != null) e.append(k);
  return e;
};

const POOL_COLORS = ['#58a6ff', '#f0883e', '#3fb950', '#db61a2', '#d29922', '#a5d6ff'];

export const fmtCount = (n) => n >= 1e9 ? (n / 1e9).toFixed(2) + 'B' : n >= 1e6 ? (n / 1e6).toFixed(2) + 'M'
  : n >= 1e3 ? (n / 1e3).toFixed(1) + 'k' : String(n ?? '?');

/** Token text with whitespace shown subtly; returns a DocumentFragment. */
export function visibleText(text) {
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

export const plainText = (text) => (text || '◌').replace(/ /g, '·').replace(/\n/g, '↵');

/** "0-3,6" from [0,1,2,3,6]. */
export function ranges(list) {
  const s = [...new Set(list)].sort((a, b) => a - b), out = [];
  for (let i = 0; i < s.length; i++) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(j > i ? `${s[i]}-${s[j]}` : `${s[i]}`);
    i = j;
  }
  return out.join(',') || '—';
}

// Pools get colours in the order the page first meets them, so a pool keeps its colour.
const poolColors = new Map();
function poolColor(name) {
  if (!poolColors.has(name)) poolColors.set(name, POOL_COLORS[poolColors.size % POOL_COLORS.length]);
  return poolColors.get(name);
}
export const poolPill = (name) => el('span', { className: 'pool', textContent: name || '?', style: `--pool:${poolColor(name)}` });

export function showError(msg) {
  const e = $('error');
  e.hidden = !msg;
  e.textContent = msg || '';
}

export function balance(counts, m) {
  const n = counts.length / m, base = new Float64Array(n);
  counts.forEach((c, i) => { base[Math.floor(i / m)] += c; });
  const mean = base.reduce((a, b) => a + b, 0) / n;
  if (!(mean > 0)) return { base, cv: 0, mm: 0 };
  const sd = Math.sqrt(base.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { base, cv: sd / mean, mm: Math.max(...base) / mean };
}
