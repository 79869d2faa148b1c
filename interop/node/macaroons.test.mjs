// npm `macaroon` against Plannt's macaroons, in both directions.
//
// npm `macaroon` checks the macaroons `plannt-l402` mints (layout, caveats, signature under the
// raw 32-byte root key), and `plannt-l402` checks macaroons that npm `macaroon` mints with
// Aperture's identifier layout. Plannt is driven through `crates/l402/examples/interop.rs`; its
// path comes from PLANNT_INTEROP_BIN (default `target/debug/examples/interop`, relative to the
// repository). Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import macaroon from 'macaroon';

const { importMacaroon, newMacaroon } = macaroon;

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN_SETTING = process.env.PLANNT_INTEROP_BIN || 'target/debug/examples/interop';
const BIN = isAbsolute(BIN_SETTING) ? BIN_SETTING : resolve(REPO, BIN_SETTING);

const ROOT_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const OTHER_KEY = new Uint8Array(32);
const PREIMAGE = Buffer.alloc(32, 0x2a);
const PAYMENT_HASH = createHash('sha256').update(PREIMAGE).digest();
const VALID_UNTIL = Math.floor(Date.now() / 1000) + 3600;

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const text = (bytes) => Buffer.from(bytes).toString('utf8');

function interop(...args) {
  assert.ok(existsSync(BIN), `${BIN} is missing: build it with \`cargo build -p plannt-l402 --example interop\``);
  const out = spawnSync(BIN, args, { encoding: 'utf8', timeout: 60_000 });
  if (out.error) throw out.error;
  return { code: out.status, stdout: out.stdout.trim(), stderr: out.stderr.trim() };
}

function planntMint(route = 'demo') {
  const out = interop('mint', hex(ROOT_KEY), route, hex(PAYMENT_HASH), String(VALID_UNTIL));
  assert.equal(out.code, 0, out.stderr);
  return out.stdout;
}

function planntVerify(token, { route = 'demo', key = ROOT_KEY } = {}) {
  return interop('verify', hex(key), token, hex(PREIMAGE), route);
}

// Aperture's 66 bytes: u16 version 0, payment hash, token id.
function apertureIdentifier(paymentHash) {
  return new Uint8Array(Buffer.concat([Buffer.alloc(2), paymentHash, randomBytes(32)]));
}

const ourCaveats = (route = 'demo') => [`services=${route}:0`, `${route}_valid_until=${VALID_UNTIL}`];

function exactly(conditions) {
  return (condition) => (conditions.includes(condition) ? null : `unexpected caveat ${condition}`);
}

// --- Plannt mints, npm macaroon reads and verifies --------------------------------------------

test('npm macaroon reads our macaroon', () => {
  const token = planntMint();
  const raw = Buffer.from(token, 'base64');
  assert.equal(raw.toString('base64'), token, 'standard padded base64');
  assert.equal(raw[0], 2, 'V2 binary');

  const m = importMacaroon(token);
  // The same from raw bytes: the string form is decoded with `-_` mapped to `+/`, so standard
  // base64 reads as is.
  assert.equal(hex(importMacaroon(new Uint8Array(raw)).signature), hex(m.signature));

  const id = Buffer.from(m.identifier);
  assert.equal(id.length, 66);
  assert.equal(id.readUInt16BE(0), 0);
  assert.equal(hex(id.subarray(2, 34)), hex(PAYMENT_HASH));
  assert.match(m.location, /^[0-9a-f]{8}$/, 'the location is the key fingerprint');
  assert.deepEqual(m.caveats.map((c) => text(c.identifier)), ourCaveats());
  assert.ok(m.caveats.every((c) => c.vid === undefined), 'first-party caveats only');
  // npm macaroon writes it back byte for byte.
  assert.equal(hex(m.exportBinary()), hex(raw));
});

test('npm macaroon verifies our macaroon with the raw root key', () => {
  const m = importMacaroon(planntMint());
  m.verify(ROOT_KEY, exactly(ourCaveats()));
});

test('npm macaroon refuses our macaroon under another key', () => {
  const m = importMacaroon(planntMint());
  assert.throws(() => m.verify(OTHER_KEY, exactly(ourCaveats())), /signature mismatch/);
});

test('npm macaroon refuses our macaroon when a caveat is not satisfied', () => {
  const m = importMacaroon(planntMint());
  assert.throws(() => m.verify(ROOT_KEY, exactly(['services=demo:0'])), /caveat check failed/);
});

// --- npm macaroon mints, Plannt verifies --------------------------------------------------------

function npmMint(caveats, location = 'js-key') {
  const m = newMacaroon({
    rootKey: ROOT_KEY,
    identifier: apertureIdentifier(PAYMENT_HASH),
    location,
    version: 2,
  });
  for (const caveat of caveats) m.addFirstPartyCaveat(caveat);
  const raw = Buffer.from(m.exportBinary());
  // The standard padded header form, and the URL-safe unpadded form the library writes itself.
  return [raw.toString('base64'), raw.toString('base64url')];
}

test('plannt verifies a macaroon minted by npm macaroon', () => {
  for (const token of npmMint(ourCaveats())) {
    const out = planntVerify(token);
    assert.equal(out.code, 0, `${out.stdout} ${out.stderr}`);
    assert.ok(out.stdout.startsWith(`ok payment_hash=${hex(PAYMENT_HASH)} `), out.stdout);
    for (const caveat of ourCaveats()) assert.ok(out.stdout.includes(caveat), out.stdout);
  }
});

test('plannt refuses a macaroon minted by npm macaroon for another route', () => {
  for (const token of npmMint(ourCaveats('other'))) {
    const out = planntVerify(token);
    assert.deepEqual([out.code, out.stdout], [1, 'wrong_route']);
  }
});

test('plannt refuses a macaroon minted by npm macaroon under another key', () => {
  const [token] = npmMint(ourCaveats());
  const out = planntVerify(token, { key: OTHER_KEY });
  assert.deepEqual([out.code, out.stdout], [1, 'bad_signature']);
});

test('plannt refuses a macaroon minted by npm macaroon that expired', () => {
  const [token] = npmMint(['services=demo:0', 'demo_valid_until=1000000000']);
  const out = planntVerify(token);
  assert.deepEqual([out.code, out.stdout], [1, 'expired']);
});
