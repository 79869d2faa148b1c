// The latency of one paid request in each dialect, against a running `plannt serve` (bench/dialects.sh).
//
//   node bench/dialect-latency.mjs BASE_URL DEV_URL ROUNDS [PATH]
//
// Each round, for L402, MPP and x402 in turn (the order rotating each round, so no dialect
// always goes first): GET PATH (default /v1/demo) without a credential -> a 402 with the three
// challenges for one invoice; POST DEV_URL/_plannt/dev/pay (the dev network the gateway's
// backend is: the gateway itself, or a `plannt dev` it reaches over dev+http) -> the preimage;
// then the paid request in that dialect, timed alone: `Authorization: L402 <macaroon>:<preimage>`,
// `Authorization: Payment <credential with the preimage>`, or `PAYMENT-SIGNATURE` naming the
// invoice (for which the gateway asks its backend whether the invoice settled). Every paid
// request must be answered 200. The timed requests go one at a time over one keep-alive
// connection. Also timed, ROUNDS times: `GET DEV_URL/_plannt/dev/invoices/HASH`, the lookup the
// x402 redemption makes, sent by this client over a keep-alive connection of its own.
//
// Prints one line per dialect and one for the lookup:
//   LATENCY name=l402 n=… mean_us=… p50_us=… p90_us=… p99_us=…
//
// Only Node's built-in modules: no npm install needed. Bounded: ROUNDS rounds.

import { createHash } from 'node:crypto';
import http from 'node:http';

const [base, devBase, roundsArg, path = '/v1/demo'] = process.argv.slice(2);
if (!base || !devBase || !roundsArg) {
  console.error('usage: node bench/dialect-latency.mjs BASE_URL DEV_URL ROUNDS [PATH]');
  process.exit(2);
}
const rounds = Number(roundsArg);

function client(target) {
  const url = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const call = (method, requestPath, { headers = {}, body } = {}) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const allHeaders = { ...headers };
      if (payload !== undefined) {
        allHeaders['content-type'] = 'application/json';
        allHeaders['content-length'] = Buffer.byteLength(payload);
      }
      const began = process.hrtime.bigint();
      const request = http.request(
        { agent, host: url.hostname, port: url.port, method, path: requestPath, headers: allHeaders },
        (response) => {
          const chunks = [];
          response.on('data', (chunk) => chunks.push(chunk));
          response.on('end', () => {
            const micros = Number(process.hrtime.bigint() - began) / 1000;
            resolve({
              status: response.statusCode,
              headers: response.headers,
              text: Buffer.concat(chunks).toString('utf8'),
              micros,
            });
          });
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
  return { call, agent };
}

const gateway = client(base);
const payer = client(devBase);
const dev = client(devBase);
// Separate connections: the timed requests never wait behind an untimed one.
const timed = client(base);

const params = (text) => Object.fromEntries([...text.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
const b64url = (text) => Buffer.from(text).toString('base64url');

/** The credential of `dialect` for a paid 402: the header to send. */
function credential(dialect, challenge, preimage) {
  const www = challenge.headers['www-authenticate'];
  const joined = Array.isArray(www) ? www.join(', ') : www;
  const body = JSON.parse(challenge.text);
  if (dialect === 'l402') {
    return ['authorization', `L402 ${body.macaroon}:${preimage}`];
  }
  if (dialect === 'mpp') {
    const start = joined.indexOf('Payment ');
    const end = joined.indexOf(', L402 ', start);
    const p = params(joined.slice(start, end < 0 ? undefined : end));
    const echoed = { id: p.id, realm: p.realm, method: p.method, intent: p.intent, request: p.request, expires: p.expires };
    return ['authorization', `Payment ${b64url(JSON.stringify({ challenge: echoed, payload: { preimage } }))}`];
  }
  const required = JSON.parse(Buffer.from(challenge.headers['payment-required'], 'base64').toString('utf8'));
  const [accepted] = required.accepts;
  const payload = {
    x402Version: 2,
    scheme: accepted.scheme,
    network: accepted.network,
    payload: { invoice: accepted.extra.invoice },
    accepted,
  };
  return ['payment-signature', Buffer.from(JSON.stringify(payload)).toString('base64')];
}

const dialects = ['l402', 'mpp', 'x402'];
const samples = { l402: [], mpp: [], x402: [], lookup: [] };

for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < dialects.length; k++) {
    const dialect = dialects[(round + k) % dialects.length];
    const challenge = await gateway.call('GET', path);
    if (challenge.status !== 402) throw new Error(`GET ${path}: expected 402, got ${challenge.status} ${challenge.text.slice(0, 200)}`);
    const { invoice, payment_hash: paymentHash } = JSON.parse(challenge.text);
    const paid = await payer.call('POST', '/_plannt/dev/pay', { body: { invoice, account: 'bench-latency' } });
    if (paid.status !== 200) throw new Error(`dev pay: expected 200, got ${paid.status} ${paid.text.slice(0, 200)}`);
    const { preimage } = JSON.parse(paid.text);
    if (createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex') !== paymentHash) {
      throw new Error(`preimage ${preimage} does not hash to ${paymentHash}`);
    }
    const [name, value] = credential(dialect, challenge, preimage);
    const answer = await timed.call('GET', path, { headers: { [name]: value } });
    if (answer.status !== 200) throw new Error(`${dialect}: expected 200, got ${answer.status} ${answer.text.slice(0, 300)}`);
    samples[dialect].push(answer.micros);
    if (k === 0) {
      const lookup = await dev.call('GET', `/_plannt/dev/invoices/${paymentHash}`);
      if (lookup.status !== 200) throw new Error(`lookup: expected 200, got ${lookup.status} ${lookup.text.slice(0, 200)}`);
      samples.lookup.push(lookup.micros);
    }
  }
}

for (const c of [gateway, payer, dev, timed]) c.agent.destroy();
const at = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
for (const [name, values] of Object.entries(samples)) {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  console.log(
    `LATENCY name=${name} n=${sorted.length} mean_us=${mean.toFixed(0)} p50_us=${at(sorted, 0.5).toFixed(0)} p90_us=${at(sorted, 0.9).toFixed(0)} p99_us=${at(sorted, 0.99).toFixed(0)}`,
  );
}
