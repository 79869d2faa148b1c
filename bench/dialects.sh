#!/usr/bin/env bash
# What the three dialects cost the gateway: `plannt serve` (release build) on loopback.
#
#   bench/dialects.sh           build --release once, run every measurement, print Markdown
#
# Measures:
#   challenges   GET /v1/demo without a credential under wrk (-t 2 -c 32, BENCH_DURATION each),
#                against two gateways running side by side: one offering L402 alone
#                (PLANNT_DIALECTS=l402: one WWW-Authenticate) and one offering the three
#                (the default: MPP's and L402's WWW-Authenticate, x402's PAYMENT-REQUIRED), in
#                BENCH_ROUNDS alternating rounds, so both see the same machine; the challenge
#                rate limit off. Every answer must be a 402. Also the gateway's CPU time per 402
#                (user + system from /proc/PID/stat, around each run).
#   paid latency bench/dialect-latency.mjs: BENCH_LATENCY_ROUNDS rounds of one paid request in
#                each dialect (L402, MPP, x402), one at a time over one keep-alive connection,
#                against (a) a gateway whose dev network is in-process (the x402 lookup is a
#                function call) and (b) a gateway whose backend is a `plannt dev` process on
#                loopback (`dev+http://`: every invoice and every x402 lookup is one HTTP round
#                trip), and the cost of that lookup's round trip measured from outside.
#
# Needs wrk (apt-get install wrk) and node. Settings (environment): BENCH_DURATION (10s),
# BENCH_ROUNDS (3), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_LATENCY_ROUNDS (400),
# BENCH_KEEP=1 keeps the work folder, BENCH_PROFILE (release, or profiling for perf).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

duration=${BENCH_DURATION:-10s}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
latency_rounds=${BENCH_LATENCY_ROUNDS:-400}

require wrk node curl

build plannt

# --- challenges per second: one dialect against three ----------------------------------------------

start one PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DIALECTS=l402 -- --store memory
one_addr=$addr one_pid=$pid
start three PLANNT_CHALLENGES_PER_SECOND=0 -- --store memory
three_addr=$addr three_pid=$pid

# cpu_ticks PID: the CPU time (user + system) of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

one_all=() three_all=() one_cpu=() three_cpu=() rows=()
for round in $(seq "$rounds"); do
    for name in one three; do
        target=$one_addr target_pid=$one_pid
        [[ $name == three ]] && target=$three_addr target_pid=$three_pid
        before=$(cpu_ticks "$target_pid")
        wrk_load "$name-$round" "http://$target/v1/demo" 402
        cpu_us=$(awk -v t="$(($(cpu_ticks "$target_pid") - before))" -v us="$tick_us" -v n="$r_requests" \
            'BEGIN { printf "%.1f", t * us / n }')
        [[ $r_other == 0 && $r_errors == 0 ]] ||
            die "$name, round $round: $r_other answers were not 402 ($r_other_status), $r_errors socket errors"
        if [[ $name == one ]]; then
            one_all+=("$r_rps") one_cpu+=("$cpu_us")
        else
            three_all+=("$r_rps") three_cpu+=("$cpu_us")
        fi
        rows+=("| $round | $([[ $name == one ]] && echo 'L402 alone' || echo 'MPP, L402, x402') | $r_requests | $r_rps | $cpu_us µs | $(us "$r_p50_us") | $(us "$r_p99_us") |")
    done
done

# A 402 of each, for its size.
one_bytes=$(curl -s -o /dev/null -w '%{size_header}+%{size_download}' "http://$one_addr/v1/demo")
three_bytes=$(curl -s -o /dev/null -w '%{size_header}+%{size_download}' "http://$three_addr/v1/demo")

pid=$one_pid
stop one
pid=$three_pid
stop three

# mean FORMAT VALUE…: their mean, printed with FORMAT.
mean() {
    local format=$1
    shift
    printf '%s\n' "$@" | awk -v f="$format" '{ s += $1 } END { printf f, s / NR }'
}
one_mean=$(mean %.0f "${one_all[@]}")
three_mean=$(mean %.0f "${three_all[@]}")
change=$(awk -v a="$three_mean" -v b="$one_mean" 'BEGIN { printf "%+.1f", (a / b - 1) * 100 }')
one_cpu_mean=$(mean %.1f "${one_cpu[@]}")
three_cpu_mean=$(mean %.1f "${three_cpu[@]}")
cpu_change=$(awk -v a="$three_cpu_mean" -v b="$one_cpu_mean" 'BEGIN { printf "%+.1f", (a / b - 1) * 100 }')

# --- paid latency per dialect: the dev network in-process --------------------------------------------

start in-process PLANNT_CHALLENGES_PER_SECOND=0 -- --store memory
node bench/dialect-latency.mjs "http://$addr" "http://$addr" "$latency_rounds" >"$work/in-process.latency"
cat "$work/in-process.latency" >&2
stop in-process

# --- paid latency per dialect: the backend one HTTP round trip away ----------------------------------

dev_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
mkdir -p "$work/dev"
PLANNT_DATA_DIR="$work/dev" "$release/plannt" dev --listen "127.0.0.1:$dev_port" --starting-balance 100000000 \
    2>"$work/dev.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do
    grep -q 'listening on' "$work/dev.log" && break
    kill -0 "$pid" 2>/dev/null || die "plannt dev exited: $(cat "$work/dev.log")"
    sleep 0.1
done
grep -q 'listening on' "$work/dev.log" || die "plannt dev did not start: $(cat "$work/dev.log")"
dev_pid=$pid
start over-http PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_LIGHTNING="dev+http://127.0.0.1:$dev_port" \
    PLANNT_DEMO_ROUTES=true -- --store memory
node bench/dialect-latency.mjs "http://$addr" "http://127.0.0.1:$dev_port" "$latency_rounds" >"$work/over-http.latency"
cat "$work/over-http.latency" >&2
stop over-http
pid=$dev_pid
stop dev

# field FILE NAME KEY: a value of a LATENCY line.
field() { awk -v name="name=$2" -v key="$3=" '$1 == "LATENCY" && $2 == name {
    for (i = 3; i <= NF; i++) if (index($i, key) == 1) print substr($i, length(key) + 1) }' "$1"; }
latency_row() {
    local file=$1 label=$2 name
    for name in l402 mpp x402; do
        echo "| $label | $name | $(field "$file" "$name" n) | $(us "$(field "$file" "$name" p50_us)") | $(us "$(field "$file" "$name" mean_us)") | $(us "$(field "$file" "$name" p90_us)") | $(us "$(field "$file" "$name" p99_us)") |"
    done
}
added() { us "$(($(field "$1" x402 "$2") - $(field "$1" l402 "$2")))"; }

cat <<EOF

## Dialects, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model); load average at the start: $load_before, at the end: $(load_average).
Revision: ${BENCH_REVISION:-$revision}; $(rustc --version); profile $profile.
Command: \`bench/dialects.sh\` (wrk -t $threads -c $connections -d $duration, $rounds alternating rounds; $latency_rounds latency rounds).

Challenges per second (every answer a 402 with a fresh dev invoice):

| round | dialects | requests | req/s | gateway CPU per 402 | p50 | p99 |
|---|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")

- mean: L402 alone $one_mean/s, three dialects $three_mean/s: **$change %**
- the gateway's CPU time (user + system, /proc/PID/stat) per 402: L402 alone $one_cpu_mean µs, three dialects $three_cpu_mean µs: **$cpu_change %** (wrk runs on the same cores and reads every header of every answer)
- one 402 (headers+body bytes): L402 alone $one_bytes, three dialects $three_bytes

Paid request latency, one at a time (the timed request only: the 402 and the payment come before it):

| backend | dialect | n | p50 | mean | p90 | p99 |
|---|---|---:|---:|---:|---:|---:|
$(latency_row "$work/in-process.latency" "dev, in-process")
$(latency_row "$work/over-http.latency" "dev+http, loopback")

- x402 − L402: in-process p50 $(added "$work/in-process.latency" p50_us), mean $(added "$work/in-process.latency" mean_us); over HTTP p50 $(added "$work/over-http.latency" p50_us), mean $(added "$work/over-http.latency" mean_us)
- one lookup (\`GET /_plannt/dev/invoices/HASH\` on \`plannt dev\`, from outside, keep-alive): p50 $(us "$(field "$work/over-http.latency" lookup p50_us)"), mean $(us "$(field "$work/over-http.latency" lookup mean_us)"), p99 $(us "$(field "$work/over-http.latency" lookup p99_us)")
EOF
