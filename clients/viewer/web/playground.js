// Playground: a random MoE gate computed entirely in the browser (no server). Random token
// embeddings and gate weights from a seeded PRNG; logits = x·W/sqrt(d) (+ noise for noisy top-k),
// softmax over all N·M micro-experts, top-k, renormalize. Same diagram as the live view.

import { Diagram, expertColor } from './diagram.js';

/** mulberry32: small, fast, seedable PRNG in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.normal = () => {
    const u = Math.max(next(), 1e-12), v = next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  return next;
}

/** One routing step of a random gate. Returns {probs, experts:[{id,expert,micro,weight}]}. */
export function gate(x, W, nMicro, m, k, noise, rnd) {
  const d = x.length, logits = new Float64Array(nMicro);
  for (let j = 0; j < nMicro; j++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[i] * W[i * nMicro + j];
    logits[j] = s / Math.sqrt(d) + (noise > 0 ? noise * rnd.normal() : 0);
  }
  const mx = Math.max(...logits);
  const e = Array.from(logits, (l) => Math.exp(l - mx));
  const z = e.reduce((a, b) => a + b, 0);
  const probs = e.map((v) => v / z);
  const order = probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a]).slice(0, k);
  const sum = order.reduce((a, i) => a + probs[i], 0);
  const experts = order.map((id) => ({ id, expert: Math.floor(id / m), micro: id % m, weight: probs[id] / sum }));
  return { probs, experts };
}

const clampInt = (v, lo, hi, dflt) => {
  const n = Math.round(Number(v));
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
};

export class Playground {
  constructor(root, { getFps, onHover }) {
    this.root = root;
    this.getFps = getFps;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.diagram = new Diagram(this.$('pg-canvas'), { onHover });
    this.chart = this.$('pg-chart');
    this.running = false;
    this.lastStep = 0;
    this.$('pg-randomize').onclick = () => { this.$('pg-seed').value = Math.floor(Math.random() * 1e6); this.reset(); this.step(); };
    this.$('pg-once').onclick = () => this.step();
    this.$('pg-start').onclick = () => this.setRunning(true);
    this.$('pg-stop').onclick = () => this.setRunning(false);
    for (const el of root.querySelectorAll('.pg-params input')) el.addEventListener('change', () => { this.reset(); this.step(); });
    this.reset();
    this.step();
  }

  params() {
    const p = {
      n: clampInt(this.$('pg-n').value, 1, 64, 8),
      s: clampInt(this.$('pg-s').value, 0, 8, 1),
      m: clampInt(this.$('pg-m').value, 1, 8, 2),
      d: clampInt(this.$('pg-d').value, 2, 512, 16),
      seed: clampInt(this.$('pg-seed').value, 0, 2 ** 31, 42),
      noise: Math.min(3, Math.max(0, Number(this.$('pg-noise').value) || 0)),
    };
    p.k = clampInt(this.$('pg-k').value, 1, p.n * p.m, 2);
    for (const [id, v] of [['pg-n', p.n], ['pg-s', p.s], ['pg-m', p.m], ['pg-d', p.d], ['pg-k', p.k], ['pg-seed', p.seed]]) {
      this.$(id).value = v;
    }
    return p;
  }

  /** New gate weights (and token stream) from the seed. */
  reset() {
    const p = (this.p = this.params());
    const rnd = prng(p.seed);
    const nMicro = p.n * p.m;
    this.W = Float64Array.from({ length: p.d * nMicro }, () => rnd.normal());
    this.tokens = prng(p.seed ^ 0x9e3779b9);
    this.count = 0;
    this.usage = new Float64Array(p.n);
    this.diagram.configure({ nExperts: p.n, m: p.m, nShared: p.s, layer: 0, title: `Random gate · ${p.n}×${p.m} micro-experts · top-${p.k}` });
  }

  /** Compute once: a new random token through the gate. */
  step() {
    const p = this.p;
    const x = Float64Array.from({ length: p.d }, () => this.tokens.normal());
    const g = gate(x, this.W, p.n * p.m, p.m, p.k, p.noise, this.tokens);
    for (const c of g.experts) { c.pool = 'browser'; this.usage[c.expert] += 1; }
    this.count += 1;
    const shared = Array.from({ length: p.s }, (_, i) => ({ expert: i, pool: 'browser' }));
    this.current = g;
    this.diagram.setRouting({ experts: g.experts, shared }, { text: `token #${this.count}`, sub: `x ~ N(0, I${p.d})` });
    this.drawChart();
    this.updateStats();
  }

  setRunning(on) {
    this.running = on;
    this.$('pg-start').disabled = on;
    this.$('pg-stop').disabled = !on;
  }

  /** Called every animation frame while the tab is shown. */
  tick(now, flowClock) {
    if (this.running && now - this.lastStep >= 1000 / Math.max(0.1, this.getFps())) {
      this.lastStep = now;
      this.step();
    }
    this.diagram.draw(now, flowClock);
  }

  updateStats() {
    const u = this.usage, mean = u.reduce((a, b) => a + b, 0) / u.length;
    const sd = Math.sqrt(u.reduce((a, b) => a + (b - mean) ** 2, 0) / u.length);
    const cv = mean > 0 ? sd / mean : 0, mm = mean > 0 ? Math.max(...u) / mean : 0;
    this.$('pg-stats').textContent =
      `${this.count} tokens · expert load CV ${cv.toFixed(2)} · max/mean ${mm.toFixed(2)}`;
  }

  /** Bar chart: the current top-k weights, and under it the full softmax over micro-experts. */
  drawChart() {
    const c = this.chart, dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth, H = c.clientHeight;
    c.width = W * dpr;
    c.height = H * dpr;
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const { experts, probs } = this.current, p = this.p;
    const top = H * 0.62;
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#8b949e';
    ctx.textBaseline = 'top';
    ctx.fillText('top-k weights (renormalized)', 6, 4);
    const bw = Math.min(70, (W - 12) / experts.length - 6);
    experts.forEach((e, i) => {
      const x = 8 + i * (bw + 6), h = (top - 44) * e.weight, y = top - 18 - h;
      ctx.fillStyle = expertColor(e.expert, p.n);
      ctx.fillRect(x, y, bw, h);
      ctx.fillStyle = '#e6edf3';
      ctx.textAlign = 'center';
      ctx.textBaseline = 'bottom';
      ctx.fillText(e.weight.toFixed(2), x + bw / 2, y - 2);
      ctx.textBaseline = 'top';
      ctx.fillStyle = '#8b949e';
      ctx.fillText(p.m > 1 ? `E${e.expert}.${e.micro}` : `E${e.expert}`, x + bw / 2, top - 14);
    });
    ctx.textAlign = 'left';
    ctx.fillText('gate softmax over all micro-experts', 6, top + 4);
    const chosen = new Set(experts.map((e) => e.id));
    const pw = (W - 12) / probs.length, pmax = Math.max(...probs), base = H - 4, ph = H - top - 26;
    probs.forEach((v, j) => {
      const h = Math.max(1, (ph * v) / pmax);
      ctx.fillStyle = chosen.has(j) ? expertColor(Math.floor(j / p.m), p.n) : '#30363d';
      ctx.fillRect(6 + j * pw, base - h, Math.max(1, pw - 1), h);
    });
  }
}
