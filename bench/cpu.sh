#!/usr/bin/env bash
# The server's CPU time per request: bare axum, `plannt serve`'s free route, and its paid path.
#
#   bench/cpu.sh             build --release once, measure, print a Markdown table
#
# Throughput on two shared cores moves with whatever else runs; the CPU a server spends per
# answer moves much less. Each round runs wrk -t 1 -c 32 -d 3s against, in turn: the bare axum
# handler (crates/gateway/examples/axum_layer.rs, its free `GET /`), a fresh `plannt serve`'s free
# `GET /status`, and fresh `plannt serve`s answering paid `GET /v1/demo` on the memory store with
# answers kept (the default) and not kept (keep_answer_bytes = 0), every paid request with a
# token of its own (bought beforehand by bench/mint.mjs). The server's user + system time, read
# from /proc/PID/stat before and after, divided by the requests it answered, is its CPU per
# request; each figure is the median of the rounds.
#
# Needs wrk and node. Settings (environment): BENCH_ROUNDS (3), BENCH_DURATION (3s),
# BENCH_CONNECTIONS (32), BENCH_TOKENS (default: 1.2 x what a calibration round of the bare
# server answers, more than any paid round does), BENCH_PROFILE (release), BENCH_KEEP=1 keeps
# the work folder.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-3s}
connections=${BENCH_CONNECTIONS:-32}
# shellcheck disable=SC2034 # wrk_load reads it
threads=1

require wrk node
build plannt
build plannt-gateway --example axum_layer

median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# ticks PID: the process's user + system time so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# measure NAME PID URL [TOKENS_FILE]: one wrk run; sets m_us (CPU µs per request) and m_rps.
measure() {
    local before after
    before=$(ticks "$2")
    wrk_load "$1" "$3" 200 ${4:+"$4"}
    after=$(ticks "$2")
    ((r_other == 0 && r_reused == 0)) || die "$1: $r_other answers were not 200, $r_reused tokens reused"
    m_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$r_requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    m_rps=$r_rps
}

start_example bare-axum "$release/examples/axum_layer"
bare_addr=$addr bare_pid=$pid

# A paid round answers fewer requests than a bare one: a bare round sizes the token supply, so
# a fast hour does not run a paid round out of tokens.
wrk_load calibration "http://$bare_addr/" 200
tokens=${BENCH_TOKENS:-$(awk -v n="$r_requests" 'BEGIN { printf "%d", n * 1.2 + 1000 }')}
echo "==> calibration: bare $r_requests requests in $duration; buying $tokens tokens" >&2

start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
node bench/mint.mjs "http://$addr" "$tokens" 16 "$work/tokens.txt"
stop mint

declare -A us rps
sides=(bare free paid-kept paid-unkept)
for round in $(seq "$rounds"); do
    measure "bare-$round" "$bare_pid" "http://$bare_addr/"
    us[bare]+=" $m_us" rps[bare]+=" $m_rps"
    start "free-$round" -- --store memory
    measure "free-$round" "$pid" "http://$addr/status"
    stop "free-$round"
    us[free]+=" $m_us" rps[free]+=" $m_rps"
    start "kept-$round" -- --store memory
    measure "kept-$round" "$pid" "http://$addr/v1/demo" "$work/tokens.txt"
    stop "kept-$round"
    us[paid-kept]+=" $m_us" rps[paid-kept]+=" $m_rps"
    start "unkept-$round" PLANNT_KEEP_ANSWER_BYTES=0 -- --store memory
    measure "unkept-$round" "$pid" "http://$addr/v1/demo" "$work/tokens.txt"
    stop "unkept-$round"
    us[paid-unkept]+=" $m_us" rps[paid-unkept]+=" $m_rps"
done

cat <<EOF_TABLE

## Server CPU per request, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model); load average at the start: $load_before, at the end: $(load_average).
Revision: ${BENCH_REVISION:-$revision}; $(rustc --version).
Command: \`bench/cpu.sh\` (wrk -t 1 -c $connections -d $duration, $rounds rounds, loopback).

| server | CPU µs per request by round | median | req/s by round |
|---|---|---:|---|
EOF_TABLE
declare -A names=([bare]="bare axum" [free]="plannt serve, free /status" [paid-kept]="plannt serve, paid, memory, answers kept" [paid-unkept]="plannt serve, paid, memory, not kept")
for side in "${sides[@]}"; do
    # shellcheck disable=SC2086 # the rounds are words
    echo "| ${names[$side]} |${us[$side]} | $(median ${us[$side]}) |${rps[$side]} |"
done
