// `plannt get` against an L402 server we did not write.
//
// The server is built here with npm `@getalby/lightning-tools`' server helpers
// (`makeL402AuthenticateHeader`, `parseL402Authorization`) and npm `macaroon`, which mints the
// macaroon with Aperture's identifier layout (u16 version 0 | payment hash | token id) under a
// root key of its own. Its invoices come from a dev network that `plannt dev` serves on a free
// loopback port; `plannt get --wallet dev+http://…` pays them from an account of that network.
// On the retry the server parses the credential with lightning-tools, checks the macaroon's
// signature with npm `macaroon` and `sha256(preimage) == payment hash`, and answers 200.
//
// It challenges in two shapes of the 2026 form: lightning-tools' own (`L402 version="0"
// token="…", invoice="…"`, no comma after the version) and the spec's (`L402 version="0",
// token="…", invoice="…"`). A third route uses lightning-tools' own token
// (`issueL402Macaroon`: base64url JSON and an HMAC, not a macaroon): Plannt cannot bind that
// token to the invoice's payment hash, so it refuses to pay (exit 6) and pays nothing.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
// Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  issueL402Macaroon,
  makeL402AuthenticateHeader,
  parseL402Authorization,
} from '@getalby/lightning-tools/402';
import macaroon from 'macaroon';

const { importMacaroon, newMacaroon } = macaroon;

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN_SETTING = process.env.PLANNT_BIN || 'target/debug/plannt';
const BIN = isAbsolute(BIN_SETTING) ? BIN_SETTING : resolve(REPO, BIN_SETTING);
const PRICE_SATS = 13;
const ROOT_KEY = new Uint8Array(randomBytes(32));
const ALBY_SECRET = randomBytes(32).toString('hex');
const ACCOUNT = 'interop';

let dir;
let dev;
let devBase;
let server;
let serverBase;
// payment hash (hex) -> { used: boolean }
const issued = new Map();
const verified = [];
// path -> the last WWW-Authenticate value sent
const challenges = new Map();

const sha256hex = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** The environment without PLANNT_* settings. */
function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PLANNT_')));
}

/** Starts `plannt dev` on 127.0.0.1:0 and resolves with its base URL, read from its stderr. */
function startDev() {
  assert.ok(existsSync(BIN), `${BIN} is missing: build it with \`cargo build -p plannt\` (or set PLANNT_BIN)`);
  let log = '';
  const child = spawn(BIN, ['dev', '--listen', '127.0.0.1:0'], {
    env: { ...inheritedEnv(), PLANNT_DATA_DIR: join(dir, 'dev') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`plannt dev did not say where it listens within 60 s:\n${log}`));
    }, 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`plannt dev exited (${code ?? signal}) before listening:\n${log}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      log += `${line}\n`;
      const found = line.match(/listening on (http:\/\/\S+)/);
      if (found) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePromise({ child, base: found[1] });
      }
    });
  });
}

async function devInvoice(sats) {
  const response = await fetch(`${devBase}/_plannt/dev/invoices`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ amount_sats: sats, memo: 'foreign L402 server', expiry_secs: 600 }),
  });
  assert.equal(response.status, 200);
  return response.json();
}

async function balanceSats() {
  const response = await fetch(`${devBase}/_plannt/dev/balance?account=${ACCOUNT}`);
  return (await response.json()).balance_sats;
}

async function paymentStatus(hash) {
  const response = await fetch(`${devBase}/_plannt/dev/payments/${hash}?account=${ACCOUNT}`);
  return (await response.json()).status;
}

/** A macaroon with Aperture's identifier layout, minted by npm `macaroon`. */
function mintMacaroon(paymentHashHex) {
  const identifier = Buffer.concat([Buffer.alloc(2), Buffer.from(paymentHashHex, 'hex'), randomBytes(32)]);
  const m = newMacaroon({ rootKey: ROOT_KEY, identifier: new Uint8Array(identifier), location: 'foreign', version: 2 });
  m.addFirstPartyCaveat('services=foreign:0');
  return Buffer.from(m.exportBinary()).toString('base64');
}

function send(res, status, headers, body) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Checks a credential: our macaroon, its signature, an invoice we issued and its preimage. */
function check(authorization) {
  const parsed = parseL402Authorization(authorization);
  if (!parsed) return 'not an L402 credential';
  const m = importMacaroon(parsed.token);
  m.verify(ROOT_KEY, (caveat) => (caveat === 'services=foreign:0' ? null : `unexpected caveat ${caveat}`));
  const hash = Buffer.from(m.identifier).subarray(2, 34).toString('hex');
  if (sha256hex(Buffer.from(parsed.preimage, 'hex')) !== hash) return 'the preimage does not pay this macaroon';
  const entry = issued.get(hash);
  if (!entry) return 'not an invoice of ours';
  if (entry.used) return 'spent';
  entry.used = true;
  verified.push({ hash, preimage: parsed.preimage });
  return null;
}

async function handle(req, res) {
  const path = new URL(req.url, 'http://x').pathname;
  const authorization = req.headers.authorization;
  if (authorization) {
    let problem;
    try {
      problem = check(authorization);
    } catch (error) {
      problem = String(error);
    }
    if (problem) return send(res, 401, {}, { error: 'Unauthorized', message: problem });
    return send(res, 200, {}, { result: 'paid', path });
  }
  const invoice = await devInvoice(PRICE_SATS);
  issued.set(invoice.payment_hash, { used: false });
  let header;
  if (path === '/alby-header') {
    header = makeL402AuthenticateHeader({ token: mintMacaroon(invoice.payment_hash), invoice: invoice.bolt11 });
  } else if (path === '/spec-header') {
    header = `L402 version="0", token="${mintMacaroon(invoice.payment_hash)}", invoice="${invoice.bolt11}"`;
  } else if (path === '/alby-token') {
    const token = await issueL402Macaroon(ALBY_SECRET, invoice.payment_hash);
    header = makeL402AuthenticateHeader({ token, invoice: invoice.bolt11 });
  } else {
    return send(res, 404, {}, { error: 'Not Found' });
  }
  challenges.set(path, header);
  return send(res, 402, { 'www-authenticate': header }, { error: 'Payment Required' });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plannt-foreign-'));
  const started = await startDev();
  dev = started.child;
  devBase = started.base;
  server = createServer((req, res) => {
    handle(req, res).catch((error) => send(res, 500, {}, { error: String(error) }));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  serverBase = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  if (server) await new Promise((ok) => server.close(ok));
  if (dev && dev.exitCode === null) {
    const exited = new Promise((ok) => dev.once('exit', ok));
    dev.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs `plannt ARGS` in a home of its own, without blocking the server above. */
function plannt(args, home) {
  mkdirSync(join(home, 'config'), { recursive: true });
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    PLANNT_CONFIG_DIR: join(home, 'config'),
    PLANNT_DATA_DIR: join(home, 'data'),
  };
  return new Promise((resolvePromise) => {
    execFile(BIN, args, { env, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : error.signal) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

const wallet = () => `dev+http://${new URL(devBase).host}?account=${ACCOUNT}`;

const SHAPES = {
  '/alby-header': /^L402 version="0" token="[A-Za-z0-9+/]+=*", invoice="lnbcrt[0-9a-z]+"$/,
  '/spec-header': /^L402 version="0", token="[A-Za-z0-9+/]+=*", invoice="lnbcrt[0-9a-z]+"$/,
};

for (const path of Object.keys(SHAPES)) {
  test(`plannt get pays a ${path.slice(1)} challenge and the server verifies the credential`, async () => {
    const home = join(dir, `home${path.replace('/', '-')}`);
    const before = await balanceSats();
    const verifiedBefore = verified.length;
    const out = await plannt(['get', '--json', '--wallet', wallet(), `${serverBase}${path}`], home);
    assert.equal(out.code, 0, `${out.stdout}\n${out.stderr}`);
    assert.match(challenges.get(path), SHAPES[path]);
    const summary = JSON.parse(out.stdout);
    assert.equal(summary.status, 200);
    assert.equal(summary.paid_sats, PRICE_SATS);
    assert.deepEqual(JSON.parse(summary.body), { result: 'paid', path });
    assert.equal(sha256hex(Buffer.from(summary.preimage, 'hex')), summary.payment_hash);

    // The server saw exactly one credential, for the invoice that was paid.
    assert.equal(verified.length, verifiedBefore + 1);
    assert.deepEqual(verified.at(-1), { hash: summary.payment_hash, preimage: summary.preimage });
    assert.equal(await balanceSats(), before - PRICE_SATS);
    assert.equal(await paymentStatus(summary.payment_hash), 'succeeded');
  });
}

test("plannt refuses to pay for lightning-tools' own token, which is not a macaroon", async () => {
  const home = join(dir, 'home-alby-token');
  const before = await balanceSats();
  const issuedBefore = issued.size;
  const out = await plannt(['get', '--wallet', wallet(), `${serverBase}/alby-token`], home);
  // 6: the server asked for payment without a challenge Plannt can check.
  assert.equal(out.code, 6, `${out.stdout}\n${out.stderr}`);
  assert.equal(out.stdout, '');
  assert.match(out.stderr, /without a usable challenge: the challenge's macaroon is unusable/);
  assert.equal(issued.size, issuedBefore + 1);
  const [hash] = [...issued.keys()].slice(-1);
  assert.equal(await paymentStatus(hash), 'not_found');
  assert.equal(await balanceSats(), before);
});
