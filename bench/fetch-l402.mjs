// The node side of bench/client.sh: one paid request with npm @getalby/lightning-tools'
// fetchWithL402, as a process of its own, the way `plannt get` runs.
//
//   node bench/fetch-l402.mjs URL DEV_BASE ACCOUNT
//
// The wallet pays through the dev network the gateway serves on loopback
// (`POST DEV_BASE/_plannt/dev/pay`). The package comes from interop/node/node_modules (pinned by
// interop/node/package-lock.json). Prints the body; exits 1 unless the answer is a 200.

import { createRequire } from 'node:module';

const [url, devBase, account] = process.argv.slice(2);
if (!url || !devBase || !account) {
  console.error('usage: node bench/fetch-l402.mjs URL DEV_BASE ACCOUNT');
  process.exit(2);
}

const require = createRequire(new URL('../interop/node/package.json', import.meta.url));
const { fetchWithL402 } = require('@getalby/lightning-tools/402');

const wallet = {
  async payInvoice({ invoice }) {
    const response = await fetch(`${devBase}/_plannt/dev/pay`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ invoice, account }),
    });
    const body = await response.json();
    if (response.status !== 200) throw new Error(`the dev network refused: ${JSON.stringify(body)}`);
    return { preimage: body.preimage, fees_paid: body.fee_msat };
  },
};

const response = await fetchWithL402(url, {}, { wallet });
const body = await response.text();
if (response.status !== 200) {
  console.error(`HTTP ${response.status}: ${body}`);
  process.exit(1);
}
process.stdout.write(body);
