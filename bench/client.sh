#!/usr/bin/env bash
# The paying client, whole process: `plannt get` of a paid /v1/demo on loopback, beside npm
# @getalby/lightning-tools' fetchWithL402 doing the same paid request in node.
#
#   bench/client.sh            build --release once, measure both in one hyperfine run, print
#                              the table and the peak RSS of each
#
# One `plannt serve` (release build, dev network, memory spent store, the challenge rate limit
# off: PLANNT_CHALLENGES_PER_SECOND=0) on 127.0.0.1. Each run is a new process that asks
# /v1/demo, gets the 402, pays the 21 sats through the gateway's dev network
# (POST /_plannt/dev/pay), retries with the credential and gets the 200:
#   plannt   plannt get -s --wallet dev+http://…?account=bench-plannt URL
#            (its own config and data folders: no budget windows, a fresh ledger)
#   node     node bench/fetch-l402.mjs URL (lightning-tools from interop/node/node_modules)
# Wall time with hyperfine (-N: no shell in between), peak RSS with /usr/bin/time -v.
#
# Needs hyperfine (apt-get install hyperfine), GNU time (/usr/bin/time), node and npm.
# Settings (environment): BENCH_RUNS (200), BENCH_WARMUP (10), BENCH_RSS_RUNS (10),
# BENCH_KEEP=1 keeps the work folder (logs, hyperfine JSON).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

runs=${BENCH_RUNS:-200}
warmup=${BENCH_WARMUP:-10}
rss_runs=${BENCH_RSS_RUNS:-10}

require hyperfine node npm curl /usr/bin/time

build plannt
plannt=$release/plannt

if [[ ! -d interop/node/node_modules/@getalby/lightning-tools ]]; then
    echo "==> npm ci (interop/node)" >&2
    (cd interop/node && npm ci --no-audit --no-fund >&2)
fi

start gateway PLANNT_CHALLENGES_PER_SECOND=0 -- --store memory
url="http://$addr/v1/demo"

# The client's settings: a config folder of its own (no file in it), a fresh ledger, no budget
# windows (a run pays 21 sats; hundreds of runs would meet the default hourly budget).
mkdir -p "$work/config"
export PLANNT_CONFIG_DIR=$work/config
export PLANNT_DATA_DIR=$work/client
export PLANNT_BUDGET_HOURLY_SATS=none
export PLANNT_BUDGET_DAILY_SATS=none
unset PLANNT_WALLET PLANNT_ALLOWED_HOSTS PLANNT_MAX_SATS_PER_REQUEST
plannt_cmd=("$plannt" get -s --wallet "dev+http://$addr?account=bench-plannt" "$url")
node_cmd=(node "$repo/bench/fetch-l402.mjs" "$url" "http://$addr" bench-node)

# Both must actually pay and get the answer before they are timed.
for cmd in plannt node; do
    if [[ $cmd == plannt ]]; then out=$("${plannt_cmd[@]}"); else out=$("${node_cmd[@]}"); fi
    [[ $out == '{"result":"verified"}' ]] || die "$cmd did not get the paid answer: $out"
done

load_start=$(load_average)
echo "==> hyperfine: $runs runs each after $warmup warm-up runs" >&2
quote() { printf '%q ' "$@"; }
hyperfine -N --warmup "$warmup" --runs "$runs" \
    --export-json "$work/hyperfine.json" --export-markdown "$work/hyperfine.md" \
    --output "$work/runs.log" \
    -n plannt "$(quote "${plannt_cmd[@]}")" \
    -n "node fetchWithL402" "$(quote "${node_cmd[@]}")" >&2

echo "==> peak RSS: /usr/bin/time -v, $rss_runs runs each" >&2
peak() {
    local max=0 kb
    for _ in $(seq 1 "$rss_runs"); do
        kb=$( { /usr/bin/time -v "$@" >/dev/null; } 2>&1 |
            sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p')
        ((kb > max)) && max=$kb
    done
    echo "$max"
}
plannt_rss=$(peak "${plannt_cmd[@]}")
node_rss=$(peak "${node_cmd[@]}")

# Every run must have paid: the receipts in plannt's ledger and the node account's balance.
paid=$("$plannt" ledger --json --limit 100000 | grep -c '"status": "paid"' || true)
node_sats=$(curl -s "http://$addr/_plannt/dev/balance?account=bench-node" |
    grep -o '"balance_sats":[0-9]*' | cut -d: -f2)

node - "$work/hyperfine.json" "$plannt_rss" "$node_rss" "$paid" "$node_sats" <<'EOF'
const [file, planntRss, nodeRss, paid, nodeSats] = process.argv.slice(2);
const { results } = JSON.parse(require('node:fs').readFileSync(file, 'utf8'));
const ms = (s) => (s * 1000).toFixed(1);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const [p, n] = results;
console.log('| client | mean ± σ (ms) | median (ms) | min (ms) | max (ms) | peak RSS (MiB) |');
console.log('|---|---|---|---|---|---|');
for (const [r, rss] of [[p, planntRss], [n, nodeRss]]) {
  console.log(`| ${r.command} | ${ms(r.mean)} ± ${ms(r.stddev)} | ${ms(median(r.times))} | ${ms(r.min)} | ${ms(r.max)} | ${(rss / 1024).toFixed(1)} |`);
}
console.log(`\nplannt is ${(n.mean / p.mean).toFixed(1)}x faster (mean), ${(median(n.times) / median(p.times)).toFixed(1)}x (median); uses ${(nodeRss / planntRss).toFixed(1)}x less memory.`);
console.log(`paid: ${paid} plannt receipts in its ledger; the node account holds ${nodeSats} sats of 1000000.`);
EOF
echo
echo "machine: $(nproc) CPUs, $(cpu_model), $(uname -sr)"
echo "versions: $("$plannt" --version), node $(node --version), hyperfine $(hyperfine --version | cut -d' ' -f2)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  revision: $revision"
echo "load average (1, 5, 15 min): $load_start at the start, $(load_average) at the end"
