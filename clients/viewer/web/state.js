// The live page's shared state: one object that the page's modules read and write, so what they
// share is listed in one place. Module-private things (diagram instances, load rows) stay in
// their modules.

export const state = {
  // /api/info's model (fields below are the defaults until it answers) and expert profiles.
  model: { n_layers: 0, n_experts: 8, granularity: 1, n_shared: 0, top_k: 2 },
  profiles: null,
  // The current generation: tokens in arrival order, by position, and its run state. firstGen is
  // set when the first generated (non-prompt) token arrives.
  gen: { tokens: [], byPos: new Map(), running: false, abort: null, started: 0 },
  genLoad: [],           // per layer: Float64Array(n_experts * m) token counts of this generation
  live: { queues: [], load: null, lastBusy: null, dropped: 0 }, // /api/events: per-layer queues, load
  selected: null,        // selected token position
  cursor: -1,            // playback index into gen.tokens
  paused: false,
  source: 'generation',  // diagram source: 'generation' | 'live'
  loadSource: 'live',
  view: 0,               // diagram layer, or 'all'
  pinned: null,          // pinned profile {layer, expert}
  tab: 'live',
};
