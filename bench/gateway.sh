#!/usr/bin/env bash
# The gateway's load harness: `plannt serve` (release build) on loopback under wrk.
#
#   bench/gateway.sh            build --release once, run every measurement, print a Markdown table
#
# Measures, each with wrk -t 2 -c 32 -d 10s --latency against 127.0.0.1 only:
#   challenges   GET /v1/demo without a credential: 402s with a fresh dev invoice each
#                (the challenge rate limit off: PLANNT_CHALLENGES_PER_SECOND=0)
#   bare         the same route served public (no price) by the same server: the baseline
#   bare axum    crates/gateway/examples/axum_layer.rs, when present: its free `GET /`, a bare
#                axum handler behind the layer's pass-through (no route of its table matches)
#   paid memory  GET /v1/demo with a token per request, memory spent store
#   paid sqlite  the same with the SQLite spent store (WAL, synchronous=FULL, group commit)
# and the peak RSS (VmHWM) of each gateway process. Every paid request carries a token of its
# own, bought beforehand by bench/mint.mjs (a 402, then a dev-network payment), and must be
# answered 200: anything else is counted and printed. The gateways share one root key
# (PLANNT_ROOT_KEY) so the tokens bought from one work on the others.
#
# Needs wrk (apt-get install wrk) and node (for bench/mint.mjs). Settings (environment):
#   BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
#   BENCH_TOKENS (default: 1.1 x what a 3 s calibration of the bare route says 10 s need;
#   at most BENCH_MAX_TOKENS, 1,500,000), BENCH_KEEP=1 keeps the work folder (logs, tokens),
#   BENCH_REVISION names the revision measured when this is not a git checkout.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
max_tokens=${BENCH_MAX_TOKENS:-1500000}

require wrk node

build plannt
axum_example=""
if [[ -f crates/gateway/examples/axum_layer.rs ]]; then
    build plannt-gateway --example axum_layer
    axum_example=$release/examples/axum_layer
fi

# stop_measured NAME: sets rss_kb to the peak RSS (kB) of the process started last, then stops it.
stop_measured() {
    rss_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    stop "$1"
    echo "==> $1: peak RSS $(mib "$rss_kb") MiB" >&2
}

rows=()
# row LABEL: a table row from the last wrk_load and stop_measured.
row() {
    local other=$r_other
    [[ $r_other != 0 ]] && other="**$r_other** ($r_other_status)"
    rows+=("| $1 | $r_requests | $r_rps | $r_expected | $other | $r_errors | $(us "$r_p50_us") | $(us "$r_p99_us") | $(us "$r_max_us") | $(mib "$rss_kb") |")
}

# --- the bare route, calibrated first to size the token supply ----------------------------------

cat >"$work/bare.toml" <<'EOF'
# The demo route without a price: the same server, route table, handler and layers, no paywall work.
[[routes]]
id = "demo"
method = "GET"
path = "/v1/demo"
handler = "demo"
description = "The demo answer, public: the baseline"
EOF
start bare -- --store memory --config "$work/bare.toml"
bare_addr=$addr bare_pid=$pid
wrk -t "$threads" -c "$connections" -d 3s -s bench/wrk.lua "http://$bare_addr/v1/demo" -- 200 \
    >"$work/calibration.wrk"
calibration=$(grep '^RESULT ' "$work/calibration.wrk")
calib_requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$calibration")
calib_us=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$calibration")
secs=${duration%s}
tokens_needed=$(awk -v n="$calib_requests" -v us="$calib_us" -v s="$secs" \
    'BEGIN { printf "%d", n / (us / 1e6) * s * 1.1 + 1000 }')
tokens=${BENCH_TOKENS:-$tokens_needed}
((tokens > max_tokens)) && tokens=$max_tokens
echo "==> calibration: bare route $calib_requests requests in $((calib_us / 1000)) ms; buying $tokens tokens" >&2

# --- buying the tokens ---------------------------------------------------------------------------

start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
mint_began=$SECONDS
node bench/mint.mjs "http://$addr" "$tokens" 16 "$work/tokens.txt"
mint_secs=$((SECONDS - mint_began))
stop_measured mint
[[ $(wc -l <"$work/tokens.txt") == "$tokens" ]] || die "mint wrote $(wc -l <"$work/tokens.txt") tokens, not $tokens"

# --- bare, with the same Authorization headers (ignored on a public route) ------------------------

pid=$bare_pid
wrk_load bare "http://$bare_addr/v1/demo" 200 "$work/tokens.txt"
stop_measured bare
row "bare: public route, no paywall (baseline)"
bare_rps=$r_rps bare_p50=$r_p50_us bare_p99=$r_p99_us

# --- a bare axum handler: the tower-layer example's free route ------------------------------------

if [[ -n $axum_example ]]; then
    start_example bare-axum "$axum_example"
    wrk_load bare-axum "http://$addr/" 200 "$work/tokens.txt"
    stop_measured bare-axum
    row "bare axum: examples/axum_layer, free GET /"
fi

# --- paid, memory store ---------------------------------------------------------------------------

start paid-memory -- --store memory
wrk_load paid-memory "http://$addr/v1/demo" 200 "$work/tokens.txt"
stop_measured paid-memory
row "paid: memory store"
mem_rps=$r_rps mem_p50=$r_p50_us mem_p99=$r_p99_us mem_other=$r_other mem_reused=$r_reused

# --- paid, SQLite store ---------------------------------------------------------------------------

start paid-sqlite -- --store sqlite
wrk_load paid-sqlite "http://$addr/v1/demo" 200 "$work/tokens.txt"
stop_measured paid-sqlite
row "paid: SQLite store"
sql_rps=$r_rps sql_p50=$r_p50_us sql_p99=$r_p99_us sql_other=$r_other sql_reused=$r_reused

# --- challenges -----------------------------------------------------------------------------------

start challenges PLANNT_CHALLENGES_PER_SECOND=0 -- --store memory
wrk_load challenges "http://$addr/v1/demo" 402
stop_measured challenges
row "challenges: 402 + dev invoice"
ch_rps=$r_rps

# --- the report ------------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
added() { us "$(awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; printf "%d", d }')"; }

cat <<EOF

## Gateway load, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model), $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory; load average at the start: $load_before, at the end: $(load_average).
Revision: ${BENCH_REVISION:-$revision}; $(rustc --version); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2).
Command: \`bench/gateway.sh\` (wrk -t $threads -c $connections -d $duration --latency, loopback, wrk and the gateway share the cores).
Tokens: $tokens bought in ${mint_secs} s (a 402 and a dev payment each), each sent once.

| run | requests | req/s | answered as expected | other answers | socket errors | p50 | p99 | max | peak RSS (MiB) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")

- paid/bare throughput: memory $(ratio "$mem_rps" "$bare_rps"), SQLite $(ratio "$sql_rps" "$bare_rps")
- latency the paywall adds (paid − bare): memory p50 $(added "$mem_p50" "$bare_p50"), p99 $(added "$mem_p99" "$bare_p99"); SQLite p50 $(added "$sql_p50" "$bare_p50"), p99 $(added "$sql_p99" "$bare_p99")
- challenges: $ch_rps/s
- paid requests not answered 200: memory $mem_other, SQLite $sql_other; thread token lists started over: memory $mem_reused, SQLite $sql_reused
EOF
