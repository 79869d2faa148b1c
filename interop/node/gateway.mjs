// `plannt serve` for the interop tests: started on 127.0.0.1:0 with the demo service (or the
// routes of a `plannt.toml` the test gives), the dev network and the memory store, in a fresh
// data folder, and stopped again.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN_SETTING = process.env.PLANNT_BIN || 'target/debug/plannt';
export const BIN = isAbsolute(BIN_SETTING) ? BIN_SETTING : resolve(REPO, BIN_SETTING);

/**
 * Starts `plannt serve` with `settings` (PLANNT_* variables) on top of its defaults: no PLANNT_*
 * variable of the test's own environment reaches it. With `config` (the text of a `plannt.toml`)
 * it serves that file's routes instead of the demo service. Resolves with `{ child, base, stop }`
 * once its JSON log says where it listens; `stop()` ends it and removes its data folder.
 */
export function startGateway(settings = {}, { config } = {}) {
  assert.ok(existsSync(BIN), `${BIN} is missing: build it with \`cargo build -p plannt\` (or set PLANNT_BIN)`);
  const dataDir = mkdtempSync(join(tmpdir(), 'plannt-interop-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PLANNT_')));
  const args = ['serve', '--listen', '127.0.0.1:0', '--store', 'memory', '--log-json'];
  if (config !== undefined) {
    const path = join(dataDir, 'plannt.toml');
    writeFileSync(path, config);
    args.push('--config', path);
  }
  const child = spawn(BIN, args, {
    env: { ...env, ...settings, PLANNT_DATA_DIR: dataDir, RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const stop = async () => {
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  };
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`plannt serve did not say where it listens within 60 s:\n${log}`));
    }, 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
      reject(new Error(`plannt serve exited (${code ?? signal}) before listening:\n${log}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      log += `${line}\n`;
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.fields?.message === 'plannt gateway listening') {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePromise({ child, base: `http://${entry.fields.addr}`, stop });
      }
    });
  });
}

/** SIGTERM, then SIGKILL if the process has not ended within 10 s. */
function stopChild(child) {
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
