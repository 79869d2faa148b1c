// npm `mppx` (the reference TypeScript SDK of MPP, the `Payment` HTTP authentication scheme)
// against `plannt serve`, and the OpenAPI document the gateway serves for discovery.
//
// The gateway runs the demo service on the dev network (`--store memory`, a fresh data folder, a
// free loopback port) with its default dialects: MPP's `WWW-Authenticate: Payment` challenge
// first, then L402's, and x402's `PAYMENT-REQUIRED`.
//
// What mppx 0.11.0 does with it, and these tests pin down:
//   - `Challenge.fromResponseList` reads our Payment challenge out of the joined header (it
//     stops at the L402 challenge that follows), with `method="lightning"`, `intent="charge"`
//     and the request JSON (amount in sats, the invoice, its payment hash, the route);
//   - mppx has no Lightning method of its own, but pays any method a client defines with
//     `Method.from` + `Method.toClient`: a `lightning`/`charge` method whose `createCredential`
//     pays the invoice through a wallet hook (here the dev network on loopback) and answers
//     `{ preimage }`; `Mppx.create({ methods }).fetch` then pays our 402 and gets the 200;
//   - `Receipt.fromResponse` reads our `Payment-Receipt` (status, method, reference = the
//     payment hash);
//   - the credential mppx built is single use: sent again for the same request it gets the
//     kept answer (`x-l402: replayed`), for another request a 402 `spent`;
//   - `discovery.validate` (mppx's check of an OpenAPI discovery document with MPP's
//     `x-payment-info`) finds no error in our `/openapi.json`, and its offers name the price
//     the catalog gives.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
// Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Challenge, Credential, Method, Receipt, z } from 'mppx';
import { Mppx } from 'mppx/client';
import { validate } from 'mppx/discovery';

import { startGateway } from './gateway.mjs';

const PRICE_SATS = 21;

let server;
let base;

before(async () => {
  server = await startGateway();
  base = server.base;
});

after(async () => {
  if (server) await server.stop();
});

/** Pays an invoice through the gateway's dev network: the wallet hook of the Lightning method. */
async function payThroughDevNetwork(invoice, paid) {
  const response = await fetch(`${base}/_plannt/dev/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ invoice, account: 'node-mppx' }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, `the dev network refused to pay: ${JSON.stringify(body)}`);
  paid.push({ invoice, preimage: body.preimage });
  return body.preimage;
}

/**
 * MPP's Lightning charge as an mppx method (draft-lightning-charge-00): the request carries the
 * invoice in `methodDetails`, the credential's payload is the preimage. Loose objects, so the
 * request mppx echoes keeps every field the challenge id covers.
 */
const lightningCharge = Method.from({
  name: 'lightning',
  intent: 'charge',
  schema: {
    credential: { payload: z.object({ preimage: z.string() }) },
    request: z.looseObject({
      amount: z.string(),
      currency: z.string(),
      methodDetails: z.looseObject({ invoice: z.string() }),
    }),
  },
});

function lightningClient(paid) {
  return Method.toClient(lightningCharge, {
    async createCredential({ challenge }) {
      const preimage = await payThroughDevNetwork(challenge.request.methodDetails.invoice, paid);
      return Credential.serialize({ challenge, payload: { preimage } });
    },
  });
}

const sha256hex = (hex) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');

test('mppx reads our Payment challenge from the joined WWW-Authenticate value', async () => {
  const response = await fetch(`${base}/v1/demo`);
  assert.equal(response.status, 402);
  const body = await response.json();
  const challenges = Challenge.fromResponseList(response);
  assert.equal(challenges.length, 1, 'one Payment challenge; the L402 one is not read as one');
  const [challenge] = challenges;
  assert.equal(challenge.method, 'lightning');
  assert.equal(challenge.intent, 'charge');
  assert.equal(challenge.realm, 'plannt');
  assert.ok(Date.parse(challenge.expires) > Date.now());
  assert.equal(challenge.request.amount, String(PRICE_SATS));
  assert.equal(challenge.request.externalId, 'demo');
  assert.equal(challenge.request.methodDetails.invoice, body.invoice);
  assert.equal(challenge.request.methodDetails.paymentHash, body.payment_hash);
  // The same through the single-challenge reader.
  assert.equal(Challenge.fromResponse(response).id, challenge.id);
});

test('mppx pays our 402 with a Lightning charge method and reads the Payment-Receipt', async () => {
  const paid = [];
  const mppx = Mppx.create({ methods: [lightningClient(paid)], polyfill: false });
  const response = await mppx.fetch(`${base}/v1/demo`);
  assert.equal(response.status, 200, await response.clone().text());
  assert.deepEqual(await response.json(), { result: 'verified' });
  assert.equal(response.headers.get('x-l402'), 'spent');
  assert.equal(paid.length, 1);

  const receipt = Receipt.fromResponse(response);
  assert.equal(receipt.status, 'success');
  assert.equal(receipt.method, 'lightning');
  assert.equal(receipt.reference, sha256hex(paid[0].preimage));
  assert.ok(!Number.isNaN(Date.parse(receipt.timestamp)), receipt.timestamp);
});

test('a credential mppx built is single use', async () => {
  const paid = [];
  const challengeResponse = await fetch(`${base}/v1/demo`);
  const [challenge] = Challenge.fromResponseList(challengeResponse);
  const credential = await lightningClient(paid).createCredential({ challenge });
  assert.match(credential, /^Payment [A-Za-z0-9_-]+$/);

  const first = await fetch(`${base}/v1/demo`, { headers: { authorization: credential } });
  assert.equal(first.status, 200, await first.clone().text());
  // The same request again: its kept answer, not a second use.
  const replayed = await fetch(`${base}/v1/demo`, { headers: { authorization: credential } });
  assert.equal(replayed.status, 200);
  assert.equal(replayed.headers.get('x-l402'), 'replayed');
  assert.equal(await replayed.text(), await first.text());
  // Another request: spent.
  const again = await fetch(`${base}/v1/demo?again=1`, { headers: { authorization: credential } });
  assert.equal(again.status, 402);
  assert.equal(again.headers.get('x-l402-reason'), 'spent');
  assert.equal(again.headers.get('content-type'), 'application/problem+json');
  assert.equal(paid.length, 1);
});

test('our OpenAPI document passes mppx discovery validation and agrees with the catalog', async () => {
  const catalog = await (await fetch(`${base}/.well-known/l402.json`)).json();
  assert.equal(catalog.openapi, '/openapi.json');
  const doc = await (await fetch(`${base}${catalog.openapi}`)).json();
  const errors = validate(doc).filter((e) => e.severity === 'error');
  assert.deepEqual(errors, []);
  assert.equal(doc.openapi, '3.1.0');

  for (const service of catalog.services.filter((s) => s.pricing?.model === 'fixed')) {
    const [endpoint] = service.endpoints;
    const operation = doc.paths[endpoint.path]?.[endpoint.method.toLowerCase()];
    assert.ok(operation, `${endpoint.method} ${endpoint.path} is in the OpenAPI document`);
    const [offer] = operation['x-payment-info'].offers;
    assert.equal(offer.amount, String(service.pricing.amount_sats));
    assert.equal(offer.method, 'lightning');
    assert.equal(offer.intent, 'charge');
    assert.deepEqual(offer.dialects, service.dialects);
    assert.ok(operation.responses['402'], 'a 402 response');
  }
});
