// Buys L402 tokens from a running `plannt serve` (dev network) for the load harness.
//
//   node bench/mint.mjs BASE_URL COUNT CONCURRENCY OUT_FILE [PATH]
//
// For each token: GET PATH (default /v1/demo) without a credential -> 402 with an invoice and a
// macaroon; POST BASE_URL/_plannt/dev/pay {invoice, account: "bench"} -> the preimage; check
// sha256(preimage) == payment_hash; write `L402 <macaroon>:<preimage>` as one line of OUT_FILE.
// Every token is a real paid one, unused. Bounded: COUNT tokens, and it gives up after
// BENCH_MINT_TIMEOUT_SECS (default 900) or at the first unexpected answer.
//
// Only Node's built-in modules: no npm install needed.

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import http from 'node:http';

const [base, countArg, concurrencyArg, outFile, path = '/v1/demo'] = process.argv.slice(2);
if (!base || !countArg || !concurrencyArg || !outFile) {
  console.error('usage: node bench/mint.mjs BASE_URL COUNT CONCURRENCY OUT_FILE [PATH]');
  process.exit(2);
}
const count = Number(countArg);
const concurrency = Math.max(1, Math.min(Number(concurrencyArg), count));
const timeoutSecs = Number(process.env.BENCH_MINT_TIMEOUT_SECS || 900);
const url = new URL(base);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function call(method, target, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path: target,
        headers: payload === undefined
          ? {}
          : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: response.statusCode, body: JSON.parse(text) });
          } catch {
            reject(new Error(`${method} ${target}: ${response.statusCode}, not JSON: ${text.slice(0, 200)}`));
          }
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

const out = createWriteStream(outFile);
let next = 0;
let done = 0;
const started = Date.now();
const deadline = started + timeoutSecs * 1000;

async function worker() {
  while (next < count) {
    next += 1;
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutSecs} s with ${done} of ${count} tokens`);
    const challenge = await call('GET', path);
    if (challenge.status !== 402) {
      throw new Error(`GET ${path}: expected 402, got ${challenge.status} ${JSON.stringify(challenge.body)}`);
    }
    const { invoice, macaroon, payment_hash: paymentHash } = challenge.body;
    const paid = await call('POST', '/_plannt/dev/pay', { invoice, account: 'bench' });
    if (paid.status !== 200) {
      throw new Error(`dev pay: expected 200, got ${paid.status} ${JSON.stringify(paid.body)}`);
    }
    const { preimage } = paid.body;
    const hash = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex');
    if (hash !== paymentHash) throw new Error(`preimage ${preimage} does not hash to ${paymentHash}`);
    if (!out.write(`L402 ${macaroon}:${preimage}\n`)) {
      await new Promise((resolve) => out.once('drain', resolve));
    }
    done += 1;
  }
}

try {
  await Promise.all(Array.from({ length: concurrency }, worker));
} catch (error) {
  console.error(`mint: ${error.message}`);
  process.exit(1);
} finally {
  agent.destroy();
}
await new Promise((resolve) => out.end(resolve));
const secs = (Date.now() - started) / 1000;
console.error(`mint: ${done} tokens in ${secs.toFixed(1)} s (${Math.round(done / secs)}/s, challenge + payment each)`);
