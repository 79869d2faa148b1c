// The admin dashboard of `plannt serve` (`/_plannt/admin/`) in headless Chromium: known traffic
// (paid requests through the dev network, refusals), then the page, logged in with the admin
// token, must show exactly those figures; a wrong token shows an error and no data; the page
// runs under its strict Content-Security-Policy without a single violation.
//
// With PLANNT_SCREENSHOTS=1 it writes docs/images/dashboard.png.
//
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
// Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openBrowser } from './browser.mjs';
import { startGateway } from './gateway.mjs';

const TOKEN = 'dashboard-test-token-0123456789';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let server;
let base;

before(async () => {
  server = await startGateway({ PLANNT_ADMIN_TOKEN: TOKEN, PLANNT_CHALLENGES_PER_SECOND: '0' });
  base = server.base;
});

after(async () => {
  if (server) await server.stop();
});

/** Pays one request to `path` through the dev network; resolves with its credential. */
async function payOnce(path) {
  const challenge = await fetch(`${base}${path}`);
  assert.equal(challenge.status, 402);
  const { macaroon, invoice } = await challenge.json();
  const paid = await fetch(`${base}/_plannt/dev/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ invoice, account: 'dashboard-test' }),
  });
  const { preimage } = await paid.json();
  assert.equal(paid.status, 200);
  const credential = `L402 ${macaroon}:${preimage}`;
  const answer = await fetch(`${base}${path}`, { headers: { authorization: credential } });
  assert.equal(answer.status, 200, await answer.text());
  return credential;
}

test('the dashboard shows the payments and refusals made, and nothing without the token', async () => {
  // Known traffic: 3 payments of 21 sats (/v1/demo), 1 of 100 (/v1/data); 2 refusals.
  const first = await payOnce('/v1/demo');
  await payOnce('/v1/demo');
  await payOnce('/v1/demo');
  await payOnce('/v1/data');
  const spent = await fetch(`${base}/v1/demo?again=1`, { headers: { authorization: first } });
  assert.equal(spent.status, 402);
  const malformed = await fetch(`${base}/v1/demo`, { headers: { authorization: 'L402 nonsense' } });
  assert.equal(malformed.status, 401);

  const { page, close } = await openBrowser();
  try {
    const violations = [];
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
    });
    page.on('pageerror', (error) => violations.push(String(error)));
    await page.setViewportSize({ width: 1100, height: 900 });
    const shell = await page.goto(`${base}/_plannt/admin/`);
    assert.equal(shell.status(), 200);
    assert.match(shell.headers()['content-security-policy'], /default-src 'none'/);

    // A wrong token: an error, no data.
    await page.fill('#token', 'not-the-admin-token-at-all');
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error'), /not the admin token/);
    assert.equal(await page.isHidden('#board'), true);
    assert.equal(await page.$('#total-sats'), null);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('plannt-admin-token')), null);

    // The right one: the figures of the traffic above.
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('body[data-loaded=yes]');
    assert.equal(await page.isHidden('#login'), true);
    assert.equal(await page.textContent('#total-sats'), '163');
    assert.equal(await page.textContent('#total-payments'), '4');
    assert.equal(await page.textContent('#total-refusals'), '2');
    assert.equal(await page.textContent('#live-paid'), '4');
    assert.equal(await page.textContent('#live-refused'), '2');
    // Four challenges for the four payments, one with the refusal as spent.
    assert.equal(await page.textContent('#live-challenges'), '5');

    const rows = async (id) =>
      page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    const routes = await rows('routes');
    const demo = routes.find((r) => r[0] === 'demo');
    assert.deepEqual(demo, ['demo', 'GET', '/v1/demo', '21', '3', '63']);
    const data = routes.find((r) => r[0] === 'data');
    assert.deepEqual(data.slice(3), ['100', '1', '100']);
    assert.deepEqual(Object.fromEntries(await rows('refusals')), { malformed: '1', spent: '1' });
    // No prepaid sessions here: nothing refunded, nothing metered.
    assert.deepEqual(await rows('dialects'), [['l402', '4', '163', '0', '0']]);
    const recent = await rows('recent');
    assert.equal(recent.length, 4);
    assert.deepEqual(recent.map((r) => r[1]), ['data', 'demo', 'demo', 'demo']);
    assert.match(await page.textContent('#health-store'), /memory: ok/);
    assert.match(await page.textContent('#health-backend'), /dev: ok/);
    assert.ok((await page.$$('#earnings-chart rect.bar')).length >= 1, 'the earnings chart has a bar');
    assert.equal((await page.$$('#live-chart polyline')).length, 3);
    assert.deepEqual(violations, [], 'no CSP violation, no script error');

    if (process.env.PLANNT_SCREENSHOTS === '1') {
      const file = resolve(REPO, 'docs/images/dashboard.png');
      mkdirSync(dirname(file), { recursive: true });
      await page.screenshot({ path: file, fullPage: true });
    }

    // Logging out forgets the token and the figures.
    await page.click('#logout');
    assert.equal(await page.isHidden('#board'), true);
    assert.equal(await page.$('#total-sats'), null);
  } finally {
    await close();
  }
});
