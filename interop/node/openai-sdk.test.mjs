// npm `openai`, the official SDK, unchanged through a metered route of `plannt serve`.
//
// The gateway runs on the dev network (`--store memory`, a fresh data folder, a free loopback
// port) with one route, `POST /v1/chat/completions`, priced by its tokens (`price = { per =
// "openai-tokens", … }`) and forwarded to the OpenAI-compatible upstream of the tests (the
// `openai-upstream` binary of plannt-testkit, beside PLANNT_BIN; OPENAI_UPSTREAM_BIN overrides).
// The Python twin of these tests is interop/python/test_openai_sdk.py.
//
// Each test asks for the 402 of a request, checks that the price is the rule applied to it (the
// prompt tokens the upstream reports, the output at the request's max_tokens), pays the invoice
// through the dev network, then calls `client.chat.completions.create(...)` with nothing changed
// but `baseURL` and `defaultHeaders: { Authorization: 'L402 …' }`: plain and streamed (`stream:
// true`, `stream_options: { include_usage: true }`). The answer and its usage must be the
// upstream's own for the same request. A token buys one call: the same token for another
// request is refused with a 402 `spent`. The route also sells prepaid sessions (MPP
// `intent="session"`): the SDK streams through one with the session's credentials in
// `defaultHeaders`, and what the session is debited is the upstream's usage priced by the rule.
//
// The package is pinned at 6.49.0, the last release of the line that runs on Node 20 (what
// package.json's `engines` allows); openai 7 asks for Node 22. It has no dependencies of its own.
//
// Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { BIN, startGateway } from './gateway.mjs';

const UPSTREAM_SETTING = process.env.OPENAI_UPSTREAM_BIN;
const UPSTREAM_BIN = UPSTREAM_SETTING
  ? isAbsolute(UPSTREAM_SETTING)
    ? UPSTREAM_SETTING
    : join(process.cwd(), UPSTREAM_SETTING)
  : join(dirname(BIN), 'openai-upstream');

// Sats per 1,000 tokens, in millisats: what the route's rule below says.
const PRICES = { 'gpt-4o-mini': [2000, 8000], 'gpt-4o': [10000, 40000] };
const MIN_SATS = 1;
const DEPOSIT_SATS = 500;

const config = (upstream) => `
[[routes]]
id = "chat"
path = "/v1/chat/completions"
method = "POST"
upstream = "${upstream}"
description = "Chat completions, priced by their tokens"
price = { per = "openai-tokens", models = { "gpt-4o-mini" = { input_per_1k = 2, output_per_1k = 8 }, "gpt-4o" = { input_per_1k = 10, output_per_1k = 40 } }, default_max_tokens = 256, max_tokens_ceiling = 2048, min_sats = 1 }
session = { deposit_sats = ${DEPOSIT_SATS}, idle_secs = 300 }
`;

const PROMPT = 'Say the words of this sentence back to me, in order.';

/** A streamed request whose last chunk carries its usage. */
const STREAMED = {
  model: 'gpt-4o',
  messages: [{ role: 'user', content: PROMPT }],
  max_tokens: 40,
  stream: true,
  stream_options: { include_usage: true },
};

let upstream;
let server;

before(async () => {
  upstream = await startUpstream();
  // No challenge rate limit: every test asks for several 402s.
  server = await startGateway({ PLANNT_CHALLENGES_PER_SECOND: '0' }, { config: config(upstream.base) });
});

after(async () => {
  if (server) await server.stop();
  if (upstream) upstream.child.kill('SIGKILL');
});

/** `openai-upstream --listen 127.0.0.1:0`: resolves once it prints where it listens. */
function startUpstream() {
  assert.ok(
    existsSync(UPSTREAM_BIN),
    `${UPSTREAM_BIN} is missing: build it with \`cargo build -p plannt-testkit --bin openai-upstream\``,
  );
  const child = spawn(UPSTREAM_BIN, ['--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolvePromise, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`openai-upstream exited (${code ?? signal})`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      child.removeAllListeners('exit');
      assert.match(line, /^listening on http:\/\//);
      resolvePromise({ child, base: line.replace('listening on ', '') });
    });
  });
}

async function post(url, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** The route's rule: whole sats, rounded up, at least the minimum. */
function rulePrice(model, inputTokens, outputTokens) {
  const [input, output] = PRICES[model];
  return Math.max(MIN_SATS, Math.ceil((inputTokens * input + outputTokens * output) / 1_000_000));
}

/** Pays an invoice through the gateway's dev network, from `account`: the payment. */
async function pay(invoice, account) {
  const paid = await post(`${server.base}/_plannt/dev/pay`, { invoice, account });
  assert.equal(paid.status, 200, `the dev network refused to pay: ${JSON.stringify(paid.body)}`);
  return paid.body;
}

/** The 402 for `request`, paid: the `Authorization` value and the 402's JSON. */
async function paidToken(request) {
  const challenge = await post(`${server.base}/v1/chat/completions`, request);
  assert.equal(challenge.status, 402, JSON.stringify(challenge.body));
  const payment = await pay(challenge.body.invoice, 'node-openai');
  assert.equal(payment.amount_msat, challenge.body.amount_sats * 1000, 'paid what the 402 asked');
  return { authorization: `L402 ${challenge.body.macaroon}:${payment.preimage}`, challenge: challenge.body };
}

/** What the upstream itself answers to `request` (it is free to ask it directly). */
async function direct(request) {
  const answer = await post(`${upstream.base}/v1/chat/completions`, request);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

const sdk = (authorization) =>
  new OpenAI({
    baseURL: `${server.base}/v1`,
    apiKey: 'not-used-by-the-gateway',
    defaultHeaders: { Authorization: authorization },
    maxRetries: 0,
  });

/** Streams a chat completion through the SDK: the text and the closing usage chunk's usage. */
async function streamed(client, model, content, maxTokens) {
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content }],
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let last;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    last = chunk;
  }
  assert.deepEqual(last.choices, [], 'the usage comes in a chunk of its own, the last');
  return { text, usage: last.usage };
}

test('the SDK pays once and gets the upstream answer', async () => {
  const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 12 };
  const { authorization, challenge } = await paidToken(request);
  const expected = await direct(request);
  // The price is the rule applied to this request: the prompt as the upstream counts it, the
  // output at max_tokens.
  assert.equal(challenge.price.input_tokens, expected.usage.prompt_tokens);
  assert.equal(challenge.amount_sats, rulePrice('gpt-4o-mini', expected.usage.prompt_tokens, 12));

  const client = sdk(authorization);
  const completion = await client.chat.completions.create(request);
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.content, expected.choices[0].message.content);
  assert.match(completion.choices[0].message.content, /^echo: Say the words/);
  assert.equal(completion.choices[0].finish_reason, 'length');
  assert.deepEqual(completion.usage, expected.usage);
  assert.ok(completion.usage.completion_tokens <= 12);

  // One call per token: the same token for another request is refused with a 402.
  await assert.rejects(
    client.chat.completions.create({ ...request, messages: [{ role: 'user', content: 'another question' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, 402);
      assert.equal(e.headers.get('x-l402-reason'), 'spent');
      return true;
    },
  );
  // A model the route does not sell is a 404 before any invoice, as OpenAI words it.
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, String(e));
      assert.equal(e.code, 'model_not_found');
      return true;
    },
  );
});

test('the SDK streams with usage through the gateway', async () => {
  const request = STREAMED;
  const { authorization, challenge } = await paidToken(request);
  const expected = await direct({ model: 'gpt-4o', messages: request.messages, max_tokens: 40 });
  assert.equal(challenge.amount_sats, rulePrice('gpt-4o', expected.usage.prompt_tokens, 40));

  const { text, usage } = await streamed(sdk(authorization), 'gpt-4o', PROMPT, 40);
  assert.equal(text, expected.choices[0].message.content);
  assert.deepEqual(
    [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens],
    [expected.usage.prompt_tokens, expected.usage.completion_tokens, expected.usage.total_tokens],
  );
});

const b64url = (text) => Buffer.from(text).toString('base64url');
const unb64url = (text) => Buffer.from(text, 'base64url').toString();

/** The `intent="session"` challenge among the 402's `WWW-Authenticate` values, as its params. */
function sessionChallenge(headers) {
  for (const challenge of headers.get('www-authenticate').split(/,\s*(?=Payment )/)) {
    if (!challenge.startsWith('Payment ')) continue;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (params.intent === 'session') return params;
  }
  assert.fail(`no session challenge in ${headers.get('www-authenticate')}`);
}

const credential = (challenge, payload) => `Payment ${b64url(JSON.stringify({ challenge, payload }))}`;

async function devBalance(account) {
  const response = await fetch(`${server.base}/_plannt/dev/balance?account=${account}`);
  assert.equal(response.status, 200);
  return (await response.json()).balance_msat;
}

test('the SDK streams through a session debited by the upstream usage', async () => {
  const request = STREAMED;
  const url = `${server.base}/v1/chat/completions`;
  // The 402 offers a session beside the single-use charge.
  const offered = await post(url, request);
  assert.equal(offered.status, 402);
  const challenge = sessionChallenge(offered.headers);
  const sessionRequest = JSON.parse(unb64url(challenge.request));
  assert.equal(sessionRequest.depositAmount, String(DEPOSIT_SATS));
  assert.equal(sessionRequest.unitType, 'token');

  // Pay the deposit; a return invoice of the client's own account.
  const { preimage } = await pay(sessionRequest.depositInvoice, 'node-openai-session');
  const issued = await post(`${server.base}/_plannt/dev/return-invoices`, {
    account: 'node-openai-refunds',
    memo: 'refund',
    expiry_secs: 3600,
  });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  const before = await devBalance('node-openai-refunds');

  // Open, then a bearer call: each streamed through the SDK, unchanged but for its headers.
  const sessionId = sessionRequest.paymentHash;
  const opening = credential(challenge, { action: 'open', preimage, returnInvoice: issued.body.bolt11 });
  const bearer = credential(challenge, { action: 'bearer', sessionId, preimage });
  let expected = 0;
  for (const [authorization, prompt] of [
    [opening, PROMPT],
    [bearer, 'and now these other words'],
  ]) {
    const { text, usage } = await streamed(sdk(authorization), 'gpt-4o', prompt, 40);
    assert.match(text, /^echo:/);
    const upstreamAnswer = await direct({ model: 'gpt-4o', messages: [{ role: 'user', content: prompt }], max_tokens: 40 });
    assert.equal(text, upstreamAnswer.choices[0].message.content);
    assert.equal(usage.total_tokens, upstreamAnswer.usage.total_tokens);
    expected += rulePrice('gpt-4o', usage.prompt_tokens, usage.completion_tokens);
  }

  // Close: the refund is the deposit less exactly what the usage costs, paid to the return
  // invoice.
  const closing = credential(challenge, { action: 'close', sessionId, preimage });
  const closed = await post(url, request, { authorization: closing });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  const receipt = JSON.parse(unb64url(closed.headers.get('payment-receipt')));
  assert.equal(closed.body.spent, expected, JSON.stringify(closed.body));
  assert.equal(closed.body.refundSats, DEPOSIT_SATS - expected);
  assert.equal(receipt.refundSats, DEPOSIT_SATS - expected);
  assert.equal(receipt.refundStatus, 'succeeded');
  assert.equal(await devBalance('node-openai-refunds'), before + (DEPOSIT_SATS - expected) * 1000);
});
