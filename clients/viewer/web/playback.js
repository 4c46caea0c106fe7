// The header's playback controls (pause, FPS, flow speed), the Live / Playground tabs, and the
// animation loop that steps and draws whichever tab is shown.

import { visibleDiagrams, showStep } from './network.js';
import { Playground } from './playground.js';
import { state } from './state.js';
import { $ } from './util.js';

const fps = () => Number($('fps').value);
const flow = () => Number($('flow').value);

/** Binds the controls and tabs, builds the playground and starts the animation loop. */
export function startPlayback() {
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
}
