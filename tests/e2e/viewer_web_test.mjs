#!/usr/bin/env node
// Browser test of the viewer's web page, driving Debian's Chromium with playwright-core.
//
// Usage: node tests/e2e/viewer_web_test.mjs --url http://127.0.0.1:PORT
//          [--expected FILE] [--screenshot OUT.png] [--seed N] [--timeout_s 60]
//
// Runs a greedy generation of 8 tokens, checks the generated token spans, clicks the last one and
// checks the expert panel has every layer with at least one chosen expert. With --expected FILE
// (JSON {"prompt", "tokens": [{"position", "layers": [[expert ids] per layer]}]}, from an
// independent run; optional "max_tokens", "seed", and per token "text") it uses that prompt and
// checks the panel's expert ids of every expected position shown on the page. Exits 1 on failure.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else out[a.slice(2)] = argv[++i];
  }
  return out;
}

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

const sameMultiset = (a, b) =>
  a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);

// GET /api/info, retrying for up to 10 s while the viewer comes up.
async function getInfo(url) {
  let last = '';
  for (let i = 0; i < 20; i++) {
    try {
      const res = await fetch(`${url}/api/info`);
      if (res.ok) return await res.json();
      last = `answered ${res.status}: ${(await res.text()).slice(0, 200)}`;
    } catch (e) {
      last = `failed: ${e.cause?.code || e.cause?.message || e.message}`;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Failure(`GET ${url}/api/info ${last}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  check(args.url, 'missing --url http://HOST:PORT');
  const url = args.url.replace(/\/$/, '');
  const timeoutMs = Number(args.timeout_s || 60) * 1000;
  const expected = args.expected ? JSON.parse(readFileSync(args.expected, 'utf8')) : null;
  const prompt = expected?.prompt ?? 'The jury said that the city';
  const maxTokens = String(expected?.max_tokens ?? 8);
  const seed = String(expected?.seed ?? args.seed ?? 1234);

  const info = await getInfo(url);
  const nLayers = info?.model?.n_layers;
  check(Number.isInteger(nLayers) && nLayers > 0, `/api/info has no model.n_layers: ${JSON.stringify(info?.model)}`);

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const pageErrors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') console.log(`[page console] ${m.text()}`); });
    await page.goto(url + '/', { waitUntil: 'load' });
    // The page renders its layer views once /api/info has answered.
    await page.waitForFunction(() => document.querySelectorAll('#layer-tabs button').length > 0, null, { timeout: 15000 });

    await page.fill('#prompt', prompt);
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', maxTokens);
    await page.fill('#seed', seed);
    await page.click('#run');
    await page.waitForFunction(
      () => ['done', 'error'].includes(document.querySelector('#status')?.textContent.trim()), null, { timeout: timeoutMs },
    ).catch(() => { throw new Failure(`#status did not become "done" within ${timeoutMs / 1000} s`); });
    const status = (await page.textContent('#status')).trim();
    const errorText = (await page.locator('#error').isVisible()) ? await page.textContent('#error') : '';
    check(status === 'done', `generation ended with status "${status}": ${errorText}`);

    const generated = page.locator('#output .token.generated');
    const nGen = await generated.count();
    check(nGen >= 1, 'no generated token span in #output');
    const texts = await generated.allTextContents();
    check(texts.some((t) => t.length > 0), 'generated token spans have no text');
    console.log(`generated ${nGen} tokens: ${JSON.stringify(texts.join(''))}`);

    // Selects the token at pos (clicking a selected token would unselect it) and reads the panel.
    const panelAt = async (pos) => {
      const span = page.locator(`#output .token[data-position="${pos}"]`);
      if (!(await span.evaluate((e) => e.classList.contains('selected')))) await span.click();
      await page.waitForFunction((p) => document.querySelector('#expert-panel')?.dataset.position === String(p), pos, { timeout: 5000 })
        .catch(() => { throw new Failure(`#expert-panel did not show position ${pos} after clicking it`); });
      return page.$$eval('#expert-panel [data-layer]', (rows) => rows.map((r) => ({
        layer: Number(r.dataset.layer),
        experts: [...r.querySelectorAll('.chosen-expert')].map((c) => Number(c.dataset.expert)),
        weights: [...r.querySelectorAll('.chosen-expert')].map((c) => Number(c.dataset.weight)),
      })));
    };

    const lastPos = Number(await generated.last().getAttribute('data-position'));
    const rows = await panelAt(lastPos);
    check(rows.length === nLayers, `#expert-panel has ${rows.length} [data-layer] rows, the model has ${nLayers} layers`);
    for (const r of rows) {
      check(r.experts.length >= 1, `layer ${r.layer}: no .chosen-expert in the panel`);
      check(r.weights.every((w) => Number.isFinite(w) && w >= 0 && w <= 1 + 1e-6), `layer ${r.layer}: bad data-weight ${r.weights}`);
    }
    check(new Set(rows.map((r) => r.layer)).size === nLayers, 'duplicate data-layer values in #expert-panel');
    console.log(`panel of position ${lastPos}: ${rows.map((r) => `L${r.layer}[${r.experts}]`).join(' ')}`);

    if (expected) {
      let compared = 0;
      for (const tok of expected.tokens || []) {
        const span = page.locator(`#output .token[data-position="${tok.position}"]`);
        if ((await span.count()) === 0) continue;
        if (tok.text != null) {
          const shown = await span.getAttribute('data-text');
          check(shown === tok.text, `position ${tok.position}: token text ${JSON.stringify(shown)}, expected ${JSON.stringify(tok.text)}`);
        }
        const got = await panelAt(tok.position);
        check(got.length === tok.layers.length, `position ${tok.position}: ${got.length} layers in the panel, expected ${tok.layers.length}`);
        tok.layers.forEach((want, l) => {
          const row = got.find((r) => r.layer === l);
          check(row, `position ${tok.position}: no panel row for layer ${l}`);
          check(sameMultiset(row.experts, want),
            `position ${tok.position} layer ${l}: panel experts [${row.experts}], expected [${want}]`);
        });
        compared++;
      }
      check(compared > 0, `none of the ${expected.tokens?.length ?? 0} expected positions is shown on the page`);
      console.log(`routing of ${compared} positions matches the independent run`);
      await panelAt(lastPos);
    }

    check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(' | ')}`);
    if (args.screenshot) {
      await page.waitForTimeout(600); // let the diagram draw a few frames
      await page.screenshot({ path: args.screenshot, fullPage: true });
      console.log(`screenshot: ${args.screenshot}`);
    }
  } finally {
    await browser.close();
  }
  console.log('viewer web test: PASS');
}

main().catch((e) => {
  console.error(e instanceof Failure ? `viewer web test: FAIL: ${e.message}` : `viewer web test: ERROR: ${e.stack || e}`);
  process.exit(1);
});
