// npm `@getalby/lightning-tools` (its L402, MPP and x402 clients) against `plannt serve`.
//
// The gateway runs the demo service on the dev network (`--store memory`, a fresh data folder,
// a free loopback port). The library's `fetchWithL402`, `fetchWithMpp`, `fetchWithX402` and
// `fetch402` get a wallet object `{ payInvoice({ invoice }) -> { preimage } }` that pays through
// the dev network the gateway serves on loopback (`POST /_plannt/dev/pay`), so nothing but the
// gateway is involved.
//
// Our 402 carries, for one invoice, `WWW-Authenticate: Payment …` (MPP), `WWW-Authenticate:
// L402 …` and `PAYMENT-REQUIRED` (x402): by default MPP's challenge comes first. fetch() joins
// the two WWW-Authenticate values into one string, `Payment id="…", …, L402 macaroon="…",
// invoice="…"`. A second gateway lists its dialects `l402,mpp,x402` (L402 first).
//
// What lightning-tools 9.0.1 does, and these tests pin down:
//   - `fetchWithMpp` pays only when the joined header *starts* with `Payment`: with the default
//     order it pays, and gets a `Payment-Receipt`; with L402 first it hands the 402 back unpaid;
//   - `fetchWithL402` and `parseL402` read the joined header in either order: the parser
//     collects every `key="value"` pair, and MPP's (`id`, `realm`, `method`, `intent`,
//     `request`, `expires`) do not collide with L402's (`macaroon`/`token`, `invoice`);
//   - `fetch402` dispatches on the start of the joined header: it pays MPP with the default
//     order, L402 with L402 first;
//   - `fetchWithX402` reads `PAYMENT-REQUIRED` whatever comes first, pays, and sends
//     `PAYMENT-SIGNATURE`; the gateway asks its node, and answers with a `PAYMENT-RESPONSE`;
//   - it keeps no token between calls: a second call to the same URL pays a second invoice;
//   - a credential handed back through `options.credentials` is sent as it is and never paid
//     again: our tokens are single-use, so for the same request the gateway gives the kept
//     answer again (`x-l402: replayed`), and for another one it answers 402 with `reason: spent`
//     (and a fresh challenge), which the library returns to the caller.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
// Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';

import {
  Fetch402InterruptedError,
  fetch402,
  fetchWithL402,
  fetchWithMpp,
  fetchWithX402,
  parseL402,
  parseL402Authorization,
} from '@getalby/lightning-tools/402';
import { Invoice } from '@getalby/lightning-tools/bolt11';

import { startGateway } from './gateway.mjs';

const PRICE_SATS = 21;

let server;
let base;
let l402FirstServer;
let l402FirstBase;

before(async () => {
  // No challenge rate limit: the tests below ask for more 402s than its burst.
  server = await startGateway({ PLANNT_CHALLENGES_PER_SECOND: '0' });
  base = server.base;
  l402FirstServer = await startGateway({ PLANNT_DIALECTS: 'l402,mpp,x402', PLANNT_CHALLENGES_PER_SECOND: '0' });
  l402FirstBase = l402FirstServer.base;
});

after(async () => {
  if (server) await server.stop();
  if (l402FirstServer) await l402FirstServer.stop();
});

/** A wallet in lightning-tools' shape that pays through a gateway's dev network. */
function devWallet(gateway = base) {
  const paid = [];
  return {
    paid,
    async payInvoice({ invoice }) {
      const response = await fetch(`${gateway}/_plannt/dev/pay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ invoice, account: 'node-test' }),
      });
      const body = await response.json();
      assert.equal(response.status, 200, `the dev network refused to pay: ${JSON.stringify(body)}`);
      paid.push({ invoice, preimage: body.preimage });
      return { preimage: body.preimage, fees_paid: body.fee_msat };
    },
  };
}

const sha256hex = (hex) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');

test('fetchWithL402 pays our 402 and gets the paid answer', async () => {
  const wallet = devWallet();
  const response = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(response.status, 200, await response.clone().text());
  assert.deepEqual(await response.json(), { result: 'verified' });
  assert.equal(response.headers.get('x-l402'), 'spent');

  assert.equal(wallet.paid.length, 1);
  const { invoice, preimage } = wallet.paid[0];
  assert.ok(invoice.startsWith('lnbcrt210n1'), invoice);
  const payment = response.payment;
  assert.equal(payment.paid, true);
  assert.equal(payment.amountSat, PRICE_SATS);
  assert.equal(payment.preimage, preimage);
  assert.equal(sha256hex(preimage), new Invoice({ pr: invoice }).paymentHash);
  assert.equal(payment.credentials.header, 'Authorization');
  assert.match(payment.credentials.value, /^L402 [A-Za-z0-9+/]+=*:[0-9a-f]{64}$/);
});

test('lightning-tools keeps no token: a second call pays a second invoice', async () => {
  const wallet = devWallet();
  for (let i = 0; i < 2; i++) {
    const response = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
    assert.equal(response.status, 200, await response.clone().text());
    assert.deepEqual(await response.json(), { result: 'verified' });
    assert.equal(response.payment.paid, true);
  }
  assert.equal(wallet.paid.length, 2);
  assert.notEqual(wallet.paid[0].invoice, wallet.paid[1].invoice);
});

test('a reused credential gets its kept answer for the same request and 402 spent for another, never a payment', async () => {
  const wallet = devWallet();
  const first = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(first.status, 200);
  const { credentials } = first.payment;

  const replayed = await fetchWithL402(`${base}/v1/demo`, {}, { wallet, credentials });
  assert.equal(replayed.status, 200);
  assert.equal(replayed.headers.get('x-l402'), 'replayed');
  assert.deepEqual(await replayed.json(), { result: 'verified' });
  assert.equal(wallet.paid.length, 1);

  const reused = await fetchWithL402(`${base}/v1/demo?again=1`, {}, { wallet, credentials });
  assert.equal(reused.status, 402);
  assert.equal(reused.headers.get('x-l402-reason'), 'spent');
  const body = await reused.json();
  assert.equal(body.reason, 'spent');
  assert.equal(body.amount_sats, PRICE_SATS);
  // The library never pays again for a credential it was handed, and says it did not pay.
  assert.equal(wallet.paid.length, 1);
  assert.equal(reused.payment.paid, false);
  // The 402 carries a fresh challenge for this request, in the shape the library reads.
  const challenge = parseL402(reused.headers.get('www-authenticate'));
  assert.equal(challenge.token, body.macaroon);
  assert.equal(challenge.invoice, body.invoice);
  assert.notEqual(challenge.invoice, wallet.paid[0].invoice);

  // A call without the old credential pays that fresh kind of challenge and succeeds.
  const again = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), { result: 'verified' });
  assert.equal(wallet.paid.length, 2);
});

test('our WWW-Authenticate header parses with the library parser', async () => {
  const response = await fetch(`${base}/v1/demo`);
  assert.equal(response.status, 402);
  // MPP's challenge first, then L402's, joined by fetch() into one value.
  const header = response.headers.get('www-authenticate');
  assert.match(header, /^Payment id="[^"]+", realm="plannt", method="lightning", intent="charge", request="[^"]+", expires="[^"]+", L402 macaroon="[^"]+", invoice="[^"]+"$/);
  const body = await response.json();
  const parsed = parseL402(header);
  assert.equal(parsed.token, body.macaroon);
  assert.equal(parsed.invoice, body.invoice);
  const invoice = new Invoice({ pr: parsed.invoice });
  assert.equal(invoice.satoshi, PRICE_SATS);
  assert.equal(invoice.paymentHash, body.payment_hash);
  // The catalog lists the three dialects for the route, in the 402's order.
  const catalog = await (await fetch(`${base}/.well-known/l402.json`)).json();
  const demo = catalog.services.find((s) => s.name === 'demo');
  assert.deepEqual(demo.dialects, ['mpp', 'l402', 'x402']);
});

test('with L402 first the header parses the same, and so does it for the lnget regex in both orders', async () => {
  const lnget = /(LSAT|L402)\s+macaroon="[^"]+",\s*invoice="[^"]+"/i;
  for (const [gateway, first] of [[base, 'Payment'], [l402FirstBase, 'L402']]) {
    const response = await fetch(`${gateway}/v1/demo`);
    assert.equal(response.status, 402);
    const header = response.headers.get('www-authenticate');
    assert.ok(header.startsWith(`${first} `), header);
    assert.match(header, lnget);
    const body = await response.json();
    const parsed = parseL402(header);
    assert.equal(parsed.token, body.macaroon);
    assert.equal(parsed.invoice, body.invoice);
  }
});

test('the credential the library builds parses with its own server-side parser', async () => {
  const wallet = devWallet();
  const response = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(response.status, 200);
  const parsed = parseL402Authorization(response.payment.credentials.value);
  assert.equal(parsed.preimage, wallet.paid[0].preimage);
  // The token is the macaroon we minted for the invoice that was paid.
  const hashInMacaroon = Buffer.from(parsed.token, 'base64').toString('hex');
  assert.ok(hashInMacaroon.includes(new Invoice({ pr: wallet.paid[0].invoice }).paymentHash));
});

test('fetch402 pays within maxAmount and refuses our invoice above it', async () => {
  const wallet = devWallet();
  const paid = await fetch402(`${base}/v1/demo`, {}, { wallet, maxAmount: PRICE_SATS });
  assert.equal(paid.status, 200);
  assert.deepEqual(await paid.json(), { result: 'verified' });
  assert.equal(wallet.paid.length, 1);

  await assert.rejects(
    fetch402(`${base}/v1/demo`, {}, { wallet, maxAmount: PRICE_SATS - 1 }),
    (error) => {
      assert.ok(error instanceof Fetch402InterruptedError, String(error));
      assert.equal(error.paid, false);
      assert.equal(error.amountSat, PRICE_SATS);
      assert.match(String(error.cause), /exceeds maxAmount/);
      return true;
    },
  );
  assert.equal(wallet.paid.length, 1);
});

test('a credential that is not genuine gets 401 and no invoice to pay', async () => {
  const wallet = devWallet();
  const first = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(first.status, 200);
  const { value } = first.payment.credentials;
  const forged = { header: 'Authorization', value: `${value.slice(0, -64)}${'00'.repeat(32)}` };
  const response = await fetchWithL402(`${base}/v1/demo`, {}, { wallet, credentials: forged });
  assert.equal(response.status, 401);
  assert.equal(response.headers.get('www-authenticate'), null);
  const body = await response.json();
  assert.equal(body.reason, 'bad_preimage');
  assert.equal(wallet.paid.length, 1);
});

test('fetchWithX402 pays our PAYMENT-REQUIRED offer; the gateway asks its node and answers PAYMENT-RESPONSE', async () => {
  const wallet = devWallet();
  const response = await fetchWithX402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(response.status, 200, await response.clone().text());
  assert.deepEqual(await response.json(), { result: 'verified' });
  assert.equal(response.headers.get('x-l402'), 'spent');
  assert.equal(wallet.paid.length, 1);
  const { invoice } = wallet.paid[0];
  const settled = JSON.parse(Buffer.from(response.headers.get('payment-response'), 'base64').toString());
  assert.equal(settled.success, true);
  assert.equal(settled.transaction, new Invoice({ pr: invoice }).paymentHash);
  assert.equal(response.payment.credentials.header, 'payment-signature');

  // The same payment again through x402: the kept answer for the same request, spent for
  // another, and the library does not pay again.
  const replayed = await fetchWithX402(`${base}/v1/demo`, {}, { wallet, credentials: response.payment.credentials });
  assert.equal(replayed.status, 200);
  assert.equal(replayed.headers.get('x-l402'), 'replayed');
  const again = await fetchWithX402(`${base}/v1/demo?again=1`, {}, { wallet, credentials: response.payment.credentials });
  assert.equal(again.status, 402);
  assert.equal((await again.json()).reason, 'spent');
  assert.equal(wallet.paid.length, 1);
});

test('each of fetchWithL402, fetchWithMpp, fetchWithX402 and fetch402 pays a route that offers all three', async () => {
  const wallet = devWallet();
  const receipts = {};
  for (const [name, pay] of [
    ['fetchWithL402', () => fetchWithL402(`${base}/v1/demo`, {}, { wallet })],
    ['fetchWithMpp', () => fetchWithMpp(`${base}/v1/demo`, {}, { wallet })],
    ['fetchWithX402', () => fetchWithX402(`${base}/v1/demo`, {}, { wallet })],
    ['fetch402', () => fetch402(`${base}/v1/demo`, {}, { wallet, maxAmount: PRICE_SATS })],
  ]) {
    const paidBefore = wallet.paid.length;
    const response = await pay();
    assert.equal(response.status, 200, `${name}: ${await response.clone().text()}`);
    assert.deepEqual(await response.json(), { result: 'verified' }, name);
    assert.equal(response.headers.get('x-l402'), 'spent', name);
    assert.equal(wallet.paid.length, paidBefore + 1, `${name} paid one invoice`);
    receipts[name] = {
      l402: response.headers.get('payment-receipt') === null && response.headers.get('payment-response') === null,
      mpp: response.headers.get('payment-receipt') !== null,
      x402: response.headers.get('payment-response') !== null,
    };
  }
  // Each paid in its own dialect; fetch402 took the first challenge, MPP's.
  assert.deepEqual(receipts, {
    fetchWithL402: { l402: true, mpp: false, x402: false },
    fetchWithMpp: { l402: false, mpp: true, x402: false },
    fetchWithX402: { l402: false, mpp: false, x402: true },
    fetch402: { l402: false, mpp: true, x402: false },
  });
  assert.equal(new Set(wallet.paid.map((p) => p.invoice)).size, 4, 'four invoices');
});

test('fetchWithMpp pays with a Payment-Receipt, and its credential is single use', async () => {
  const wallet = devWallet();
  const response = await fetchWithMpp(`${base}/v1/demo`, {}, { wallet });
  assert.equal(response.status, 200, await response.clone().text());
  assert.deepEqual(await response.json(), { result: 'verified' });
  assert.equal(wallet.paid.length, 1);
  const { invoice, preimage } = wallet.paid[0];
  const receipt = JSON.parse(Buffer.from(response.headers.get('payment-receipt'), 'base64url').toString());
  assert.equal(receipt.status, 'success');
  assert.equal(receipt.reference, new Invoice({ pr: invoice }).paymentHash);
  assert.equal(sha256hex(preimage), receipt.reference);
  assert.match(response.payment.credentials.value, /^Payment [A-Za-z0-9_-]+$/);

  // Single use: handed back for the same request it gets the kept answer; for another it is
  // refused as spent, as problem details.
  const replayed = await fetchWithMpp(`${base}/v1/demo`, {}, { wallet, credentials: response.payment.credentials });
  assert.equal(replayed.status, 200);
  assert.equal(replayed.headers.get('x-l402'), 'replayed');
  const again = await fetchWithMpp(`${base}/v1/demo?again=1`, {}, { wallet, credentials: response.payment.credentials });
  assert.equal(again.status, 402);
  assert.equal(again.headers.get('content-type'), 'application/problem+json');
  assert.equal(again.headers.get('x-l402-reason'), 'spent');
  assert.equal(wallet.paid.length, 1);
});

test('with L402 first, fetchWithMpp hands the 402 back unpaid; the other three pay, fetch402 in L402', async () => {
  const wallet = devWallet(l402FirstBase);
  const unpaid = await fetchWithMpp(`${l402FirstBase}/v1/demo`, {}, { wallet });
  assert.equal(unpaid.status, 402);
  assert.equal(wallet.paid.length, 0);

  for (const pay of [
    () => fetchWithL402(`${l402FirstBase}/v1/demo`, {}, { wallet }),
    () => fetchWithX402(`${l402FirstBase}/v1/demo`, {}, { wallet }),
  ]) {
    const response = await pay();
    assert.equal(response.status, 200, await response.clone().text());
  }
  const any = await fetch402(`${l402FirstBase}/v1/demo`, {}, { wallet, maxAmount: PRICE_SATS });
  assert.equal(any.status, 200);
  assert.equal(any.headers.get('payment-receipt'), null, 'paid through L402, not MPP');
  assert.match(any.payment.credentials.value, /^L402 /);
  assert.equal(wallet.paid.length, 3);
});
