// The official `openai` client library (pinned in package-lock.json) against a running cluster's
// OpenAI-compatible API: models, a completion, a streamed one, n, stop, logprobs, and bad requests
// whose errors the client parses. Greedy text must equal what moectl got over gRPC.
// Usage: node openai_client_test.mjs --base-url http://HOST:PORT/v1 --model ID
//          --expected moectl_complete.json --prompt TEXT --max-tokens N
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';

const { values: args } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    model: { type: 'string' },
    expected: { type: 'string' },
    prompt: { type: 'string' },
    'max-tokens': { type: 'string' },
  },
});
const model = args.model;
const prompt = args.prompt;
const maxTokens = Number(args['max-tokens']);
const expected = JSON.parse(fs.readFileSync(args.expected, 'utf8'));  // moectl complete's JSON
const client = new OpenAI({ baseURL: args['base-url'], apiKey: 'not-needed', maxRetries: 0, timeout: 120_000 });

let failed = 0;
function check(cond, what) {
  if (cond) {
    console.log(`ok   ${what}`);
  } else {
    console.log(`FAIL ${what}`);
    failed++;
  }
}
const show = (x) => JSON.stringify(x);

// The served model, as `model` must name it.
const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);
check(ids.length === 1 && ids[0] === model, `models.list: ${show(ids)} names ${model}`);

// A greedy completion equals moectl's (gRPC Complete).
const greedy = { model, prompt, max_tokens: maxTokens, temperature: 0 };
const c = await client.completions.create(greedy);
check(c.choices.length === 1 && c.choices[0].text === expected.text,
  `completion text equals moectl's: ${show(c.choices[0]?.text)} vs ${show(expected.text)}`);
check(c.choices[0].finish_reason === expected.finish_reason,
  `finish_reason ${c.choices[0].finish_reason}`);
check(c.usage.completion_tokens === expected.token_ids.length &&
  c.usage.prompt_tokens === expected.prompt_tokens &&
  c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens,
  `usage ${show(c.usage)}`);
check(c.object === 'text_completion' && c.id.startsWith('cmpl-') && c.model === model &&
  Number.isInteger(c.created), `id ${c.id}, object, created, model`);

// Streamed: one event per token, the same text, ending with [DONE] (the client stops there).
const stream = await client.completions.create({ ...greedy, stream: true, stream_options: { include_usage: true } });
let streamed = '';
let events = 0;
let lastFinish = null;
let usage = null;
const arrivals = [];
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const ch of chunk.choices) {
    streamed += ch.text;
    events++;
    arrivals.push(performance.now());
    if (ch.finish_reason) lastFinish = ch.finish_reason;
  }
}
check(streamed === expected.text, `streamed text equals moectl's: ${show(streamed)}`);
check(events === expected.token_ids.length, `one event per token: ${events}`);
check(lastFinish === expected.finish_reason && usage?.completion_tokens === events,
  `stream ends with finish_reason ${lastFinish} and usage ${show(usage)}`);
check(arrivals[arrivals.length - 1] - arrivals[0] > 0, 'events arrive over time, not at once');

// n completions: indexes 0..n-1, each its own sample; completion 0 is the n = 1 answer.
const sampled = { model, prompt, max_tokens: 12, temperature: 1.2, seed: 11 };
const many = await client.completions.create({ ...sampled, n: 3 });
const single = await client.completions.create(sampled);
check(many.choices.map((x) => x.index).join() === '0,1,2', `n=3 gives indexes ${many.choices.map((x) => x.index)}`);
check(new Set(many.choices.map((x) => x.text)).size > 1, `n=3 samples differ: ${show(many.choices.map((x) => x.text))}`);
check(many.choices[0].text === single.choices[0].text, 'completion 0 of n=3 is the n=1 completion');

// stop: the text ends before the stop sequence, which is never shown.
const words = expected.text.split(' ').filter((w) => w.length > 1);
const stopWord = words[Math.floor(words.length / 2)];
const cut = expected.text.slice(0, expected.text.indexOf(stopWord));
const stopped = await client.completions.create({ ...greedy, stop: [stopWord, '@@@'] });
check(stopped.choices[0].text === cut && stopped.choices[0].finish_reason === 'stop',
  `stop ${show(stopWord)}: ${show(stopped.choices[0].text)} (${stopped.choices[0].finish_reason})`);
const stoppedStream = await client.completions.create({ ...greedy, stop: stopWord, stream: true });
let stoppedText = '';
for await (const chunk of stoppedStream) for (const ch of chunk.choices) stoppedText += ch.text;
check(stoppedText === cut, `streamed stop shows no part of the stop sequence: ${show(stoppedText)}`);

// logprobs: each token's, and the top alternatives; greedy picks the most likely.
const lp = await client.completions.create({ ...greedy, logprobs: 3 });
const l = lp.choices[0].logprobs;
check(l.tokens.length === maxTokens && l.token_logprobs.length === maxTokens &&
  l.top_logprobs.length === maxTokens && l.text_offset.length === maxTokens,
  `logprobs: ${maxTokens} tokens`);
let greedyIsTop = true;
for (let i = 0; i < l.tokens.length; i++) {
  const top = Object.entries(l.top_logprobs[i]);
  const best = top.reduce((a, b) => (b[1] > a[1] ? b : a));
  if (top.length !== 3 || best[0] !== l.tokens[i] || Math.abs(best[1] - l.token_logprobs[i]) > 1e-6 ||
      l.token_logprobs[i] > 0) greedyIsTop = false;
}
check(greedyIsTop, 'logprobs: 3 alternatives each, the greedy token the most likely, all <= 0');
if (!l.tokens.some((t) => t.includes('\uFFFD'))) {  // no character split between tokens
  check(l.tokens.join('') === expected.text, `logprobs tokens spell the text: ${show(l.tokens)}`);
}

// Bad requests: OpenAI's error shape, parsed by the client.
try {
  await client.completions.create({ ...greedy, max_tokens: 0 });
  check(false, 'max_tokens 0 is refused');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'max_tokens' &&
    e.type === 'invalid_request_error' && /max_tokens: must be in \[1, 1024\], got 0/.test(e.message),
    `max_tokens 0: ${e.status} param=${e.param} type=${e.type} ${show(e.message)}`);
}
try {
  await client.completions.create({ ...greedy, presence_penalty: 3 });
  check(false, 'presence_penalty 3 is refused');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.param === 'presence_penalty',
    `presence_penalty 3: ${e.status} param=${e.param}`);
}
try {
  await client.completions.create({ ...greedy, model: 'gpt-3.5-turbo-instruct' });
  check(false, 'an unknown model is refused');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.param === 'model',
    `unknown model: ${e.status} code=${e.code}`);
}

console.log(failed ? `openai_client_test: ${failed} failed` : 'openai_client_test: all passed');
process.exit(failed ? 1 : 0);
