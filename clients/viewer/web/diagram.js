// Network diagram of one MoE layer, drawn by hand on a canvas: the router on the left, expert
// boxes on the right (m micro-expert dots each), shared experts always on, one quadratic Bezier
// arc per chosen micro-expert (colour = base expert, thickness = max(2, 2 + 18 w)) with packets
// flowing along it. Used by the live view and by the in-browser playground.

const FADE_MS = 220;
const BASE_PERIOD_S = 1.6; // seconds a packet takes to cross an arc at flow speed 1
const SHARED_COLOR = '#c9d1d9';

/** Colour of base expert e out of n: evenly spaced hues, alternating lightness when many. */
export function expertColor(e, n) {
  const hue = Math.round((e * 360) / Math.max(1, n) + 200) % 360;
  const light = n > 12 && e % 2 ? 70 : 60;
  return `hsl(${hue} 80% ${light}%)`;
}

function withAlpha(hsl, a) {
  return hsl.replace(')', ` / ${a})`);
}

export const arcWidth = (w) => Math.max(2, 2 + 18 * w);

export class Diagram {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{compact?: boolean, onHover?: Function, onClick?: Function}} opts
   *   onHover/onClick get {layer, expert, shared} or null.
   */
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.compact = !!opts.compact;
    this.onHover = opts.onHover || (() => {});
    this.onClick = opts.onClick || (() => {});
    this.cfg = { nExperts: 8, m: 1, nShared: 0, layer: 0, title: '' };
    this.routing = null;
    this.prev = null;
    this.caption = null;
    this.changedAt = 0;
    this.highlight = null; // base expert id outlined (hover or pinned profile)
    this.hovered = null;
    this.boxes = [];
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
    canvas.addEventListener('mousemove', (ev) => this.#pointer(ev, false));
    canvas.addEventListener('click', (ev) => this.#pointer(ev, true));
    canvas.addEventListener('mouseleave', () => {
      this.hovered = null;
      this.canvas.style.cursor = '';
      this.onHover(null);
    });
  }

  configure(cfg) {
    this.cfg = { ...this.cfg, ...cfg };
    this.layout();
  }

  /** routing: {experts:[{id,expert,micro,weight,pool}], shared:[{expert,pool}], latency_ms} or null. */
  setRouting(routing, caption = null) {
    if (routing === this.routing) return;
    this.prev = this.routing;
    this.routing = routing;
    this.caption = caption;
    this.changedAt = performance.now();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, this.canvas.clientWidth);
    const h = Math.max(1, this.canvas.clientHeight);
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.W = w;
    this.H = h;
    this.layout();
  }

  layout() {
    const { nExperts, nShared, m } = this.cfg;
    const W = this.W, H = this.H, pad = this.compact ? 8 : 14;
    const top = this.compact ? 20 : 28;
    this.router = { x: W * (this.compact ? 0.16 : 0.2), y: (H + top) / 2, r: this.compact ? 13 : 22 };
    const x0 = W * (this.compact ? 0.5 : 0.54), x1 = W - pad;
    const total = nShared + nExperts;
    const availH = H - top - pad;
    const minBox = this.compact ? 11 : 20, gapY = this.compact ? 3 : 5, gapX = 8;
    const rowsMax = Math.max(1, Math.floor((availH + gapY) / (minBox + gapY)));
    const cols = Math.max(1, Math.ceil(total / rowsMax));
    const rows = Math.ceil(total / cols);
    const bw = (x1 - x0 - (cols - 1) * gapX) / cols;
    const bh = Math.min(this.compact ? 22 : 38, (availH - (rows - 1) * gapY) / rows);
    const used = rows * bh + (rows - 1) * gapY;
    const y0 = top + (availH - used) / 2;
    this.boxes = [];
    for (let i = 0; i < total; i++) {
      const col = Math.floor(i / rows), row = i % rows;
      const shared = i < nShared;
      const box = {
        x: x0 + col * (bw + gapX), y: y0 + row * (bh + gapY), w: bw, h: bh,
        shared, expert: shared ? i : i - nShared, dots: [],
      };
      const n = shared ? 1 : m;
      const dotR = Math.max(2, Math.min(bh * 0.22, 5));
      const step = Math.min(dotR * 3, (bw * 0.45) / Math.max(1, n));
      for (let j = 0; j < n; j++) box.dots.push({ x: box.x + dotR + 4 + j * step, y: box.y + bh / 2, r: dotR });
      this.boxes.push(box);
    }
  }

  boxOf(expert, shared = false) {
    return this.boxes[shared ? expert : this.cfg.nShared + expert];
  }

  #pointer(ev, click) {
    const r = this.canvas.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top;
    const b = this.boxes.find((b) => x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h);
    const hit = b ? { layer: this.cfg.layer, expert: b.expert, shared: b.shared } : null;
    this.canvas.style.cursor = hit ? 'pointer' : '';
    if (click) { if (hit) this.onClick(hit); return; }
    const key = hit ? `${hit.shared}:${hit.expert}` : null;
    if (key !== this.hovered) {
      this.hovered = key;
      this.onHover(hit);
    }
  }

  /**
   * Draws one frame. now: ms timestamp (for fades); flowClock: seconds of packet travel so far,
   * already scaled by the flow speed (the caller accumulates dt * speed, so pausing freezes it).
   */
  draw(now, flowClock = now / 1000) {
    const ctx = this.ctx, { nExperts, m } = this.cfg;
    ctx.clearRect(0, 0, this.W, this.H);
    if (this.W < 60 || this.H < 60) return; // hidden or not laid out yet
    const fade = Math.min(1, (now - this.changedAt) / FADE_MS);
    const phase = flowClock / BASE_PERIOD_S;

    // Title.
    ctx.font = `600 ${this.compact ? 11 : 13}px system-ui, sans-serif`;
    ctx.fillStyle = '#8b949e';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.fillText(this.cfg.title || `Layer ${this.cfg.layer}`, 8, 6);
    if (this.routing?.latency_ms != null && !this.compact) {
      ctx.textAlign = 'right';
      ctx.fillText(`${this.routing.latency_ms.toFixed(2)} ms`, this.W - 10, 6);
    }

    const active = new Map(); // base expert -> summed weight
    for (const c of this.routing?.experts || []) active.set(c.expert, (active.get(c.expert) || 0) + c.weight);

    // Arcs (previous routing fading out, then the current one) under the boxes, so that arcs to a
    // far column pass beneath the nearer boxes.
    if (this.prev && fade < 1) this.#arcs(this.prev, 1 - fade, phase, false);
    if (this.routing) this.#arcs(this.routing, fade, phase, true);

    // Expert boxes (backgrounds + glow).
    for (const b of this.boxes) {
      const col = b.shared ? SHARED_COLOR : expertColor(b.expert, nExperts);
      const w = b.shared ? 1 : active.get(b.expert) || 0;
      ctx.save();
      if (w > 0) {
        ctx.shadowColor = col;
        ctx.shadowBlur = (this.compact ? 6 : 10) + 18 * Math.min(1, w) * (b.shared ? 0.4 : fade);
        ctx.fillStyle = withAlpha(b.shared ? 'hsl(210 15% 80%)' : col, b.shared ? 0.14 : 0.12 + 0.3 * w * fade);
      } else {
        ctx.fillStyle = 'rgb(22 27 34 / 0.88)';
      }
      roundRect(ctx, b.x, b.y, b.w, b.h, 5);
      ctx.fill();
      ctx.restore();
      ctx.lineWidth = this.highlight === b.expert && !b.shared ? 2.5 : 1;
      ctx.strokeStyle = this.highlight === b.expert && !b.shared ? '#f0f6fc' : w > 0 ? col : '#30363d';
      ctx.setLineDash(b.shared ? [4, 3] : []);
      roundRect(ctx, b.x, b.y, b.w, b.h, 5);
      ctx.stroke();
      ctx.setLineDash([]);
    }

    // Router node.
    const R = this.router;
    ctx.beginPath();
    ctx.moveTo(6, R.y);
    ctx.lineTo(R.x - R.r, R.y);
    ctx.strokeStyle = '#484f58';
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(R.x, R.y, R.r, 0, Math.PI * 2);
    ctx.fillStyle = '#21262d';
    ctx.fill();
    ctx.strokeStyle = '#a371f7';
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.fillStyle = '#e6edf3';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.font = `600 ${this.compact ? 9 : 11}px system-ui, sans-serif`;
    ctx.fillText('router', R.x, R.y);

    // Caption: the token being routed.
    if (this.caption) {
      ctx.textAlign = 'left';
      ctx.textBaseline = 'bottom';
      ctx.font = `${this.compact ? 11 : 15}px ui-monospace, monospace`;
      ctx.fillStyle = this.caption.color || '#e6edf3';
      const t = this.caption.text.length > 14 ? this.caption.text.slice(0, 13) + '…' : this.caption.text;
      ctx.fillText(t, 8, R.y - (this.compact ? 6 : 10));
      if (this.caption.sub && !this.compact) {
        ctx.textBaseline = 'top';
        ctx.font = '11px system-ui, sans-serif';
        ctx.fillStyle = '#8b949e';
        ctx.fillText(this.caption.sub, 8, R.y + 8);
      }
    }

    // Labels and micro dots on top of the arcs.
    const pools = new Map();
    for (const c of this.routing?.experts || []) pools.set(c.expert, c.pool);
    for (const s of this.routing?.shared || []) pools.set(`s${s.expert}`, s.pool);
    const litMicro = new Set((this.routing?.experts || []).map((c) => c.id));
    for (const b of this.boxes) {
      const col = b.shared ? SHARED_COLOR : expertColor(b.expert, nExperts);
      b.dots.forEach((d, j) => {
        const lit = b.shared || litMicro.has(b.expert * m + j);
        ctx.beginPath();
        ctx.arc(d.x, d.y, d.r, 0, Math.PI * 2);
        ctx.fillStyle = lit ? col : '#30363d';
        ctx.fill();
      });
      const last = b.dots[b.dots.length - 1];
      const lx = last.x + last.r + 5;
      if (b.w - (lx - b.x) < 18) continue;
      ctx.textAlign = 'left';
      ctx.textBaseline = 'middle';
      ctx.font = `${this.compact ? 9 : 11}px system-ui, sans-serif`;
      ctx.fillStyle = active.has(b.expert) && !b.shared ? '#f0f6fc' : b.shared ? '#c9d1d9' : '#8b949e';
      ctx.fillText(b.shared ? `S${b.expert}` : `E${b.expert}`, lx, b.y + b.h / 2);
      if (this.compact) continue;
      const pool = b.shared ? pools.get(`s${b.expert}`) : pools.get(b.expert);
      const tag = b.shared ? `always-on${pool ? ' · ' + pool : ''}` : active.has(b.expert) ? pool || '' : '';
      ctx.font = '10px system-ui, sans-serif';
      if (tag && b.x + b.w - 6 - ctx.measureText(tag).width > lx + 30) {
        ctx.textAlign = 'right';
        ctx.fillStyle = b.shared ? '#8b949e' : col;
        ctx.fillText(tag, b.x + b.w - 6, b.y + b.h / 2);
      }
    }
  }

  #arcs(routing, alpha, phase, withLabels) {
    const ctx = this.ctx, { nExperts } = this.cfg, R = this.router;
    const sx = R.x + R.r, sy = R.y;
    const path = (tx, ty) => {
      const cx = sx + (tx - sx) * 0.55, cy = ty;
      return { cx, cy, at: (t) => bezier(sx, sy, cx, cy, tx, ty, t) };
    };
    ctx.save();
    ctx.globalAlpha = alpha;
    // Shared experts: always on, thin dashed neutral arcs.
    for (const s of routing.shared || []) {
      const b = this.boxOf(s.expert, true);
      if (!b) continue;
      const d = b.dots[0], p = path(d.x, d.y);
      ctx.beginPath();
      ctx.moveTo(sx, sy);
      ctx.quadraticCurveTo(p.cx, p.cy, d.x, d.y);
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = withAlpha('hsl(210 15% 80%)', 0.55);
      ctx.lineWidth = 2;
      ctx.stroke();
      ctx.setLineDash([]);
      this.#packets(p, 2, phase, SHARED_COLOR, 2.5);
    }
    const showWeights = withLabels && !this.compact && (routing.experts || []).length <= 8;
    (routing.experts || []).forEach((c, rank) => {
      const b = this.boxOf(c.expert);
      if (!b) return;
      const d = b.dots[Math.min(c.micro || 0, b.dots.length - 1)];
      const p = path(d.x, d.y), col = expertColor(c.expert, nExperts);
      ctx.beginPath();
      ctx.moveTo(sx, sy);
      ctx.quadraticCurveTo(p.cx, p.cy, d.x, d.y);
      ctx.strokeStyle = withAlpha(col, 0.75);
      ctx.lineWidth = arcWidth(c.weight) * (this.compact ? 0.5 : 1);
      ctx.lineCap = 'round';
      ctx.stroke();
      this.#packets(p, 1 + Math.round(c.weight * 3), phase + c.id * 0.137, '#ffffff', 2 + 3 * c.weight);
      if (showWeights) {
        const [mx, my] = p.at(0.5 + 0.1 * (rank % 4)); // staggered so neighbouring arcs' labels don't collide
        ctx.font = '10px ui-monospace, monospace';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'bottom';
        ctx.fillStyle = col;
        ctx.fillText(c.weight.toFixed(2), mx, my - arcWidth(c.weight) / 2 - 2);
      }
    });
    ctx.restore();
  }

  #packets(p, count, phase, color, r) {
    const ctx = this.ctx;
    for (let i = 0; i < count; i++) {
      const t = (((phase + i / count) % 1) + 1) % 1;
      const [x, y] = p.at(t);
      ctx.beginPath();
      ctx.arc(x, y, this.compact ? r * 0.6 : r, 0, Math.PI * 2);
      ctx.fillStyle = color;
      ctx.shadowColor = color;
      ctx.shadowBlur = 6;
      ctx.fill();
      ctx.shadowBlur = 0;
    }
  }
}

function bezier(x0, y0, cx, cy, x1, y1, t) {
  const u = 1 - t;
  return [u * u * x0 + 2 * u * t * cx + t * t * x1, u * u * y0 + 2 * u * t * cy + t * t * y1];
}

function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  ctx.roundRect(x, y, Math.max(0, w), Math.max(0, h), Math.max(0, Math.min(r, h / 2, w / 2)));
}
