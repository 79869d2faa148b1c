// Sends a fixed number of GET requests over keep-alive connections, for bench/instructions.sh.
//
//   node bench/requests.mjs URL WARMUP COUNT CONCURRENCY [TOKENS_FILE]
//
// First WARMUP requests (the connections opened, the server's lazy set-up done), then the
// command in the environment variable REQUESTS_BEFORE (run by the shell, waited for), then COUNT
// requests, then REQUESTS_AFTER: the two commands bracket exactly COUNT requests on the same open
// connections (bench/instructions.sh zeroes and dumps callgrind's counters with them). CONCURRENCY
// requests are in flight at a time. With TOKENS_FILE (one `L402 <macaroon>:<preimage>` a line,
// bench/mint.mjs) each request carries the next token as its Authorization header, none twice.
// Every answer must be a 200; anything else, or too few tokens, exits 1.
//
// Only Node's built-in modules: no npm install needed.

import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const [target, warmupArg, countArg, concurrencyArg, tokensFile] = process.argv.slice(2);
if (!target || !warmupArg || !countArg || !concurrencyArg) {
  console.error('usage: node bench/requests.mjs URL WARMUP COUNT CONCURRENCY [TOKENS_FILE]');
  process.exit(2);
}
const warmup = Number(warmupArg);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const url = new URL(target);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const tokens = tokensFile ? readFileSync(tokensFile, 'utf8').split('\n').filter((l) => l) : null;
if (tokens && tokens.length < warmup + count) {
  console.error(`requests: ${tokens.length} tokens in ${tokensFile}, ${warmup + count} needed`);
  process.exit(1);
}
let used = 0;

function get() {
  return new Promise((resolve, reject) => {
    const headers = tokens ? { authorization: tokens[used++] } : {};
    const request = http.request(
      { agent, host: url.hostname, port: url.port, method: 'GET', path: url.pathname + url.search, headers },
      (response) => {
        response.resume();
        response.on('end', () => {
          if (response.statusCode === 200) resolve();
          else reject(new Error(`${target}: ${response.statusCode} ${response.headers['x-l402-reason'] ?? ''}`));
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end();
  });
}

// phase N: N requests, CONCURRENCY at a time.
async function phase(n) {
  let next = 0;
  async function worker() {
    while (next < n) {
      next += 1;
      await get();
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

function run(variable) {
  const command = process.env[variable];
  if (command) execSync(command, { stdio: ['ignore', 'ignore', 'inherit'] });
}

try {
  await phase(warmup);
  run('REQUESTS_BEFORE');
  const started = Date.now();
  await phase(count);
  const secs = (Date.now() - started) / 1000;
  run('REQUESTS_AFTER');
  console.error(`requests: ${count} answered 200 in ${secs.toFixed(1)} s after ${warmup} to warm up`);
} catch (error) {
  console.error(`requests: ${error.message}`);
  process.exit(1);
} finally {
  agent.destroy();
}
