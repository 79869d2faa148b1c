// npm `@getalby/lightning-tools` (its L402 client) against `plannt serve`.
//
// The gateway runs the demo service on the dev network (`--store memory`, a fresh data folder,
// a free loopback port). The library's `fetchWithL402` and `fetch402` get a wallet object
// `{ payInvoice({ invoice }) -> { preimage } }` that pays through the dev network the gateway
// serves on loopback (`POST /_plannt/dev/pay`), so nothing but the gateway is involved.
//
// Our 402 carries, for one invoice, `WWW-Authenticate: L402 …` (first), `WWW-Authenticate:
// Payment …` (MPP, a second value) and `PAYMENT-REQUIRED` (x402). fetch() joins the two
// WWW-Authenticate values into one string, `L402 macaroon="…", invoice="…", Payment id="…", …`.
//
// What lightning-tools 9.0.1 does, and these tests pin down:
//   - the first call gets our 402, parses `WWW-Authenticate: L402 macaroon="…", invoice="…"`,
//     pays, retries with `Authorization: L402 <macaroon>:<preimage>` and gets the 200;
//   - it keeps no token between calls: a second call to the same URL pays a second invoice;
//   - a credential handed back through `options.credentials` is sent as it is and never paid
//     again: our tokens are single-use, so the gateway answers it 402 with `reason: spent` (and
//     a fresh challenge) and the library returns that 402 to the caller;
//   - `parseL402` reads the joined header: it collects every `key="value"` pair, and MPP's
//     (`id`, `realm`, `method`, `intent`, `request`, `expires`) do not collide with L402's;
//   - `fetch402` dispatches on the start of the joined header: L402 first, so it pays L402;
//   - `fetchWithMpp` pays only when the joined header *starts* with `Payment`: with L402 first
//     it hands the 402 back unpaid. A gateway whose routes offer MPP alone (`dialects =
//     ["mpp"]`) is paid by it, and answers with a `Payment-Receipt`;
//   - `fetchWithX402` reads `PAYMENT-REQUIRED` whatever comes first, pays, and sends
//     `PAYMENT-SIGNATURE`; the gateway asks its node, and answers with a `PAYMENT-RESPONSE`.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
// Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

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

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN_SETTING = process.env.PLANNT_BIN || 'target/debug/plannt';
const BIN = isAbsolute(BIN_SETTING) ? BIN_SETTING : resolve(REPO, BIN_SETTING);
const PRICE_SATS = 21;

let server;
let base;
let mppServer;
let mppBase;
const dataDirs = [];
let serverLog = '';

/** The environment without PLANNT_* settings, so the gateway runs on its defaults. */
function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PLANNT_')));
}

/**
 * Starts `plannt serve` on 127.0.0.1:0 (with `settings`, PLANNT_* variables, on top of its
 * defaults) and resolves with its address, read from its JSON log.
 */
function startServer(settings = {}) {
  assert.ok(existsSync(BIN), `${BIN} is missing: build it with \`cargo build -p plannt\` (or set PLANNT_BIN)`);
  const dataDir = mkdtempSync(join(tmpdir(), 'plannt-lightning-tools-'));
  dataDirs.push(dataDir);
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--store', 'memory', '--log-json'], {
    env: { ...inheritedEnv(), ...settings, PLANNT_DATA_DIR: dataDir, RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`plannt serve did not say where it listens within 60 s:\n${serverLog}`));
    }, 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`plannt serve exited (${code ?? signal}) before listening:\n${serverLog}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      serverLog += `${line}\n`;
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.fields?.message === 'plannt gateway listening') {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePromise({ child, addr: entry.fields.addr });
      }
    });
  });
}

function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise();
    });
    child.kill('SIGTERM');
  });
}

before(async () => {
  const started = await startServer();
  server = started.child;
  base = `http://${started.addr}`;
  const mppOnly = await startServer({ PLANNT_DIALECTS: 'mpp' });
  mppServer = mppOnly.child;
  mppBase = `http://${mppOnly.addr}`;
});

after(async () => {
  if (server) await stopServer(server);
  if (mppServer) await stopServer(mppServer);
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
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

test('a reused credential gets 402 spent, which the library hands back without paying', async () => {
  const wallet = devWallet();
  const first = await fetchWithL402(`${base}/v1/demo`, {}, { wallet });
  assert.equal(first.status, 200);
  const { credentials } = first.payment;

  const reused = await fetchWithL402(`${base}/v1/demo`, {}, { wallet, credentials });
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
  // The L402 challenge first, then MPP's, joined by fetch() into one value.
  const header = response.headers.get('www-authenticate');
  assert.match(header, /^L402 macaroon="[^"]+", invoice="[^"]+", Payment id="[^"]+", realm="plannt", method="lightning", intent="charge", request="[^"]+", expires="[^"]+"$/);
  const body = await response.json();
  const parsed = parseL402(header);
  assert.equal(parsed.token, body.macaroon);
  assert.equal(parsed.invoice, body.invoice);
  const invoice = new Invoice({ pr: parsed.invoice });
  assert.equal(invoice.satoshi, PRICE_SATS);
  assert.equal(invoice.paymentHash, body.payment_hash);
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

  // The same payment again through x402: spent, and the library does not pay again.
  const again = await fetchWithX402(`${base}/v1/demo`, {}, { wallet, credentials: response.payment.credentials });
  assert.equal(again.status, 402);
  assert.equal((await again.json()).reason, 'spent');
  assert.equal(wallet.paid.length, 1);
});

test('fetchWithMpp hands our 402 back unpaid while L402 comes first', async () => {
  const wallet = devWallet();
  const response = await fetchWithMpp(`${base}/v1/demo`, {}, { wallet });
  assert.equal(response.status, 402);
  assert.equal(wallet.paid.length, 0);
});

test('fetchWithMpp pays a route that offers MPP alone and gets a Payment-Receipt', async () => {
  const wallet = devWallet(mppBase);
  const response = await fetchWithMpp(`${mppBase}/v1/demo`, {}, { wallet });
  assert.equal(response.status, 200, await response.clone().text());
  assert.deepEqual(await response.json(), { result: 'verified' });
  assert.equal(wallet.paid.length, 1);
  const { invoice, preimage } = wallet.paid[0];
  const receipt = JSON.parse(Buffer.from(response.headers.get('payment-receipt'), 'base64url').toString());
  assert.equal(receipt.status, 'success');
  assert.equal(receipt.reference, new Invoice({ pr: invoice }).paymentHash);
  assert.equal(sha256hex(preimage), receipt.reference);
  assert.match(response.payment.credentials.value, /^Payment [A-Za-z0-9_-]+$/);

  // Single use: the credential handed back is refused as spent, as problem details.
  const again = await fetchWithMpp(`${mppBase}/v1/demo`, {}, { wallet, credentials: response.payment.credentials });
  assert.equal(again.status, 402);
  assert.equal(again.headers.get('content-type'), 'application/problem+json');
  assert.equal(again.headers.get('x-l402-reason'), 'spent');
  assert.equal(wallet.paid.length, 1);

  // fetch402 pays the MPP challenge too, when it is the only one.
  const any = await fetch402(`${mppBase}/v1/demo`, {}, { wallet, maxAmount: PRICE_SATS });
  assert.equal(any.status, 200);
  assert.ok(any.headers.get('payment-receipt'));
  assert.equal(wallet.paid.length, 2);
});
