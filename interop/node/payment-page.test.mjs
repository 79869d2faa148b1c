// The payment page in headless Chromium: a person opens a paid URL of `plannt serve`, sees the
// price, the invoice as a QR code and a `lightning:` link, pays it (here through the gateway's
// dev network on loopback, as a wallet on a phone would), and the page then shows what was paid
// for, with the credential in an HttpOnly cookie the page's script cannot read.
//
// With PLANNT_SCREENSHOTS=1 the page is saved to docs/images/payment-page.png.
// The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository);
// Chromium from PLANNT_CHROMIUM. Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openBrowser } from './browser.mjs';
import { startGateway } from './gateway.mjs';

const SCREENSHOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'images', 'payment-page.png');

let server;
let browser;

before(async () => {
  server = await startGateway();
  browser = await openBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** Pays an invoice through the gateway's dev network; resolves with the preimage. */
async function payThroughDevNetwork(invoice) {
  const response = await fetch(`${server.base}/_plannt/dev/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ invoice, account: 'node-page' }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, `the dev network refused to pay: ${JSON.stringify(body)}`);
  return body.preimage;
}

test('a person opens a paid URL, pays the invoice on the page and sees the resource', async () => {
  const { page } = browser;
  const url = `${server.base}/v1/demo`;
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(String(error)));
  const elsewhere = [];
  const failed = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(server.base)) elsewhere.push(request.url());
  });
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname;
    // Chromium asks for /favicon.ico by itself; the page and its polls are all it asks else.
    if (response.status() >= 400 && response.status() !== 402 && path !== '/favicon.ico') {
      failed.push(`${response.status()} ${path}`);
    }
  });
  await page.setViewportSize({ width: 520, height: 960 });

  const first = await page.goto(url);
  assert.equal(first.status(), 402);
  const headers = first.headers();
  assert.match(headers['www-authenticate'], /L402 macaroon="[^"]+", invoice="[^"]+"/);
  assert.ok(headers['payment-required'], 'the x402 offer is there too');
  assert.match(headers['content-security-policy'], /^default-src 'none'; script-src 'sha256-/);

  // What the page shows.
  assert.equal((await page.textContent('#plannt-price')).trim(), '21 sats');
  assert.match(await page.textContent('#plannt-description'), /Issues a 402 with an invoice/);
  const invoice = (await page.textContent('#plannt-invoice')).trim();
  assert.match(invoice, /^lnbcrt210n1/);
  assert.equal(await page.getAttribute('#plannt-open', 'href'), `lightning:${invoice}`);
  assert.ok(headers['www-authenticate'].includes(`invoice="${invoice}"`), 'the page shows the 402\'s own invoice');
  const qr = await page.$('svg#plannt-qr path');
  assert.ok(qr, 'the QR code is an inline SVG');
  assert.ok((await qr.getAttribute('d')).length > 1000, 'with its modules');
  const box = await page.$eval('svg#plannt-qr', (svg) => svg.getBoundingClientRect().width);
  assert.ok(box > 150, `the QR code is drawn large enough to scan (${box} px)`);
  await page.waitForFunction(() => document.getElementById('plannt-status').textContent.includes('Waiting'));
  if (process.env.PLANNT_SCREENSHOTS === '1') {
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }

  // Paid from a wallet elsewhere: the page notices and loads the resource.
  const preimage = await payThroughDevNetwork(invoice);
  const loaded = await page.waitForResponse((r) => r.url() === url && r.status() === 200, { timeout: 30_000 });
  assert.equal(loaded.headers()['x-l402'], 'spent');
  await page.waitForLoadState();
  assert.match(await page.textContent('body'), /"result":\s*"verified"/);

  // The credential is in an HttpOnly, SameSite=Strict cookie: the page's scripts cannot read it.
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => c.name === 'plannt-demo');
  assert.ok(cookie, JSON.stringify(cookies.map((c) => c.name)));
  assert.ok(cookie.value.endsWith(`:${preimage}`));
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/');
  assert.equal(await page.evaluate(() => document.cookie), '');

  // A reload gets the same answer again, kept, nothing paid.
  const again = await page.reload();
  assert.equal(again.status(), 200);
  assert.equal(again.headers()['x-l402'], 'replayed');

  // The strict policy refused nothing the page needs, and nothing left the gateway's origin.
  assert.deepEqual(problems.filter((p) => !p.startsWith('Failed to load resource')), []);
  assert.deepEqual(failed, []);
  assert.deepEqual(elsewhere, []);
});

test('an agent asking the same URL still gets the JSON 402', async () => {
  const response = await fetch(`${server.base}/v1/demo`, { headers: { accept: '*/*' } });
  assert.equal(response.status, 402);
  assert.equal(response.headers.get('content-type'), 'application/json');
  const body = await response.json();
  assert.match(body.invoice, /^lnbcrt210n1/);
  assert.ok(body.macaroon);
});
