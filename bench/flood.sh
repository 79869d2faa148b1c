#!/usr/bin/env bash
# Paid traffic beside a challenge flood and garbage credentials.
#
#   bench/flood.sh              build --release once, run both phases, print a Markdown report
#
# Starts two `plannt serve` (release, memory store, loopback) sharing one root key: a mint, whose
# dev network sells the paid role's tokens beforehand (no challenge limit), and the gateway under
# load (challenges_per_second 5, challenge_burst 20). Then bench/load (plannt-load flood):
#   phase 1  paid alone: FLOOD_PAID_RATE req/s over FLOOD_PAID_CONNECTIONS connections from
#            127.0.0.1, each request with a token of its own (expects 200 + x-l402: spent)
#   phase 2  the same paid traffic, plus a challenge flood from 127.0.0.2 (no credential, as fast
#            as the gateway answers: 402 for the burst, then 429) and garbage credentials from
#            127.0.0.3 (malformed and forged, as fast as answered: 401)
# sampling the gateway's RSS every second. Exits 1 when a goal is missed: paid throughput within
# 20 % of phase 1, paid p99 within 2x, the flooders answered 402/429 and 401 only, peak RSS under
# the flood at most twice the baseline's; 2 when the run itself fails.
#
# Settings (environment): FLOOD_SECS (20, per phase), FLOOD_PAID_RATE (1000),
# FLOOD_PAID_CONNECTIONS (16), FLOOD_CONNECTIONS (4, flood and garbage each), FLOOD_RATE (0: as
# fast as answered; flood and garbage each), FLOOD_STORE (memory; or sqlite), FLOOD_PIN=1 (the
# gateway on CPU 0, the harness and the mint on CPU 1, with taskset: the flooders' own work then
# takes no CPU from the gateway, as when they run on other machines), BENCH_KEEP=1 keeps the work
# folder (logs).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
die_status=2 # 1 is a missed goal

secs=${FLOOD_SECS:-20}
paid_rate=${FLOOD_PAID_RATE:-1000}
paid_connections=${FLOOD_PAID_CONNECTIONS:-16}
connections=${FLOOD_CONNECTIONS:-4}
flood_rate=${FLOOD_RATE:-0}
store=${FLOOD_STORE:-memory}
harness_cpu=()
if [[ ${FLOOD_PIN:-} == 1 ]]; then
    require taskset
    harness_cpu=(taskset -c 1)
fi

build plannt
build plannt-load
load=$release/plannt-load

[[ ${FLOOD_PIN:-} == 1 ]] && serve_prefix=(taskset -c 1)
start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
mint_addr=$addr
[[ ${FLOOD_PIN:-} == 1 ]] && serve_prefix=(taskset -c 0)
start gateway PLANNT_CHALLENGES_PER_SECOND=5 PLANNT_CHALLENGE_BURST=20 -- --store "$store"
gateway_addr=$addr gateway_pid=$pid

status=0
"${harness_cpu[@]}" "$load" flood --gateway "$gateway_addr" --mint "$mint_addr" --pid "$gateway_pid" --secs "$secs" \
    --paid-rate "$paid_rate" --paid-connections "$paid_connections" \
    --flood-connections "$connections" --garbage-connections "$connections" \
    --flood-rate "$flood_rate" --garbage-rate "$flood_rate" \
    --challenges-per-second 5 --challenge-burst 20 >"$work/report.md" || status=$?
((status == 2)) && die "plannt-load failed"

cat <<EOF_REPORT

## Flood, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model), Linux $(uname -r); load average at the start: $load_before, at the end: $(load_average).
Revision: $revision$(git diff --quiet HEAD -- crates bench/load Cargo.lock 2>/dev/null || echo " with local changes"); $(rustc --version).
Command: \`bench/flood.sh\` (FLOOD_SECS=$secs, paid $paid_rate req/s over $paid_connections connections, flood and garbage $connections connections each at $( ((flood_rate == 0)) && echo "full speed" || echo "$flood_rate req/s"), $store store; $( [[ ${FLOOD_PIN:-} == 1 ]] && echo "the gateway pinned to CPU 0, the harness and the mint to CPU 1" || echo "the load generator and the gateway share the cores")).

$(cat "$work/report.md")
EOF_REPORT
exit "$status"
