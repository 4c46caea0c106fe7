// The viewer page's entry: wires the modules of the live tab (generation, routing panel, network
// diagrams, live load, expert profiles, placement and policy) and the playground, then loads the
// model. Shared state is in state.js; the server API in api.js.

import { initGenerate } from './generate.js';
import { startLive } from './live.js';
import { initPolicy, loadInfo, loadPolicy, renderPlacement } from './model_info.js';
import { highlightExpert, initNetwork } from './network.js';
import { startPlayback } from './playback.js';
import { onProfileShown } from './profiles.js';
import { initTokenPanel } from './token_panel.js';

onProfileShown(highlightExpert);
initPolicy();
initGenerate();
initTokenPanel();
initNetwork();
startLive({ onPlacement: renderPlacement });
startPlayback();

loadInfo();
loadPolicy();
