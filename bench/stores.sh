#!/usr/bin/env bash
# The paid path per spent store against a bare axum server, and this disk's fsync floor.
#
#   bench/stores.sh             build --release once, measure, print a Markdown table
#
# Each store runs BENCH_ROUNDS (3) rounds; a round is wrk -t 1 -c 32 -d 3s against the bare axum
# handler (crates/gateway/examples/axum_layer.rs, its free `GET /`), then the same against a fresh
# `plannt serve` with that store whose every request carries a token of its own (bought
# beforehand by bench/mint.mjs), answered 200. Bare and paid alternate, so a machine that slows
# down slows both; each side's figure is its median. One wrk thread leaves the server under test
# a core of its own (two wrk threads take more of the two cores from both sides and show a higher
# ratio). Stores: memory; sqlite (WAL, synchronous=FULL, group commit; the default);
# sqlite-normal (the same with sqlite_sync = normal); redis (a redis-server of the script's own
# on loopback, no persistence) when redis-server is installed. Answers are kept (the default),
# except by memory-unkept and redis-unkept (keep_answer_bytes = 0), which are not in the default
# list.
#
# CPU: each round's CPU time (user and system, from /proc/PID/stat) of the bare server, of
# `plannt serve`, and of `redis-server` for the Redis store, over the requests wrk counted; the
# table gives each one's median in µs a request. wrk's own share is not counted.
#
# The fsync floor: BENCH_FSYNC_WRITES (2000) writes of 4 KiB to a file in the work folder (the
# folder the SQLite store writes to), each followed by fdatasync (dd oflag=dsync): how many
# durable writes a second this disk takes one at a time.
#
# BENCH_PIN=1 gives each server under test (the bare one, `plannt serve`) CPU 0 to itself and puts
# wrk and redis-server on CPU 1 (taskset): how fast each side is on one core of its own, with
# redis-server's CPU off the gateway's core, as where it runs on a host of its own.
#
# Needs wrk, node (bench/mint.mjs) and dd. Settings (environment): BENCH_ROUNDS (3),
# BENCH_DURATION (3s), BENCH_CONNECTIONS (32), BENCH_THREADS (1), BENCH_TOKENS (default: 1.2 x
# what a calibration of the bare server says one round needs), BENCH_STORES ("memory sqlite
# sqlite-normal redis"), BENCH_PIN (empty), BENCH_KEEP=1 keeps the work folder.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-3s}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-1}
stores=${BENCH_STORES:-memory sqlite sqlite-normal redis}
fsync_writes=${BENCH_FSYNC_WRITES:-2000}

require wrk node dd
pin=${BENCH_PIN:-}
on_own_cpu=() on_load_cpu=()
if [[ -n $pin ]]; then
    require taskset
    on_own_cpu=(taskset -c 0) on_load_cpu=(taskset -c 1)
fi
build plannt
build plannt-gateway --example axum_layer

# median N…: the middle value (the lower middle of an even count).
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# cpu_ticks PID: the CPU time PID has used, user and system, in clock ticks.
ticks_per_second=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# per_request TICKS REQUESTS: microseconds of CPU a request.
per_request() {
    awk -v t="$1" -v n="$2" -v hz="$ticks_per_second" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'
}

# --- the fsync floor, before any load ------------------------------------------------------------

dd_out=$(dd if=/dev/zero of="$work/fsync.bin" bs=4096 count="$fsync_writes" oflag=dsync 2>&1 | tail -1)
dd_secs=$(sed -n 's/.* copied, \([0-9.e+-]*\) s.*/\1/p' <<<"$dd_out")
fsync_per_sec=$(awk -v n="$fsync_writes" -v s="$dd_secs" 'BEGIN { printf "%.0f", n / s }')
fsync_us=$(awk -v n="$fsync_writes" -v s="$dd_secs" 'BEGIN { printf "%.0f", s / n * 1e6 }')
rm -f "$work/fsync.bin"
echo "==> fsync floor: $fsync_writes durable 4 KiB writes in $dd_secs s: $fsync_per_sec/s, $fsync_us µs each" >&2

# --- the bare server, calibrated to size the token supply ----------------------------------------

start_example bare-axum "$release/examples/axum_layer"
bare_addr=$addr bare_pid=$pid
[[ -n $pin ]] && taskset -a -p -c 0 "$bare_pid" >/dev/null
wrk -t "$threads" -c "$connections" -d "$duration" -s bench/wrk.lua "http://$bare_addr/" -- 200 \
    >"$work/calibration.wrk"
calibration=$(grep '^RESULT ' "$work/calibration.wrk")
calib_requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$calibration")
tokens=${BENCH_TOKENS:-$(awk -v n="$calib_requests" 'BEGIN { printf "%d", n * 1.2 + 1000 }')}
echo "==> calibration: bare $calib_requests requests in $duration; buying $tokens tokens" >&2

start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
node bench/mint.mjs "http://$addr" "$tokens" 16 "$work/tokens.txt"
stop mint
[[ $(wc -l <"$work/tokens.txt") == "$tokens" ]] || die "mint wrote $(wc -l <"$work/tokens.txt") tokens, not $tokens"

# --- Redis, when there is one ----------------------------------------------------------------------

redis_url="" redis_pid=""
if [[ " $stores " == *" redis "* || " $stores " == *" redis-unkept "* ]]; then
    if command -v redis-server >/dev/null 2>&1; then
        redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        mkdir -p "$work/redis"
        ${on_load_cpu[@]+"${on_load_cpu[@]}"} redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$work/redis" >"$work/redis/log" 2>&1 &
        pids+=("$!")
        redis_pid=$!
        for _ in $(seq 100); do
            grep -q 'Ready to accept connections' "$work/redis/log" && break
            sleep 0.1
        done
        redis_url="redis://127.0.0.1:$redis_port"
    else
        echo "==> redis-server is not installed: the Redis store is left out" >&2
        stores=$(printf '%s\n' $stores | grep -v '^redis' | tr '\n' ' ' || true)
    fi
fi

# --- the rounds ---------------------------------------------------------------------------------

serve_prefix=(${on_own_cpu[@]+"${on_own_cpu[@]}"})
wrk_prefix=(${on_load_cpu[@]+"${on_load_cpu[@]}"})

rows=()
for store in $stores; do
    bare=() paid=() other=0 bare_cpu=() paid_cpu=() redis_cpu=()
    for round in $(seq "$rounds"); do
        pid=$bare_pid
        before=$(cpu_ticks "$bare_pid")
        wrk_load "bare-$store-$round" "http://$bare_addr/" 200
        bare+=("$r_rps")
        bare_cpu+=("$(per_request $(($(cpu_ticks "$bare_pid") - before)) "$r_requests")")
        envs=()
        case $store in
            memory) args=(--store memory) ;;
            memory-unkept)
                envs=(PLANNT_KEEP_ANSWER_BYTES=0)
                args=(--store memory)
                ;;
            sqlite) args=(--store "sqlite:$work/$store-$round.sqlite") ;;
            sqlite-normal)
                envs=(PLANNT_SQLITE_SYNC=normal)
                args=(--store "sqlite:$work/$store-$round.sqlite")
                ;;
            redis | redis-unkept)
                redis-cli -p "$redis_port" flushall >/dev/null 2>&1 || true
                [[ $store == redis-unkept ]] && envs=(PLANNT_KEEP_ANSWER_BYTES=0)
                args=(--store "$redis_url")
                ;;
        esac
        start "paid-$store-$round" ${envs[@]+"${envs[@]}"} -- "${args[@]}"
        before=$(cpu_ticks "$pid")
        [[ $store == redis* ]] && redis_before=$(cpu_ticks "$redis_pid")
        wrk_load "paid-$store-$round" "http://$addr/v1/demo" 200 "$work/tokens.txt"
        paid_cpu+=("$(per_request $(($(cpu_ticks "$pid") - before)) "$r_requests")")
        if [[ $store == redis* ]]; then
            redis_cpu+=("$(per_request $(($(cpu_ticks "$redis_pid") - redis_before)) "$r_requests")")
        fi
        stop "paid-$store-$round"
        paid+=("$r_rps")
        other=$((other + r_other + r_reused))
    done
    b=$(median "${bare[@]}") p=$(median "${paid[@]}")
    cpu="$(median "${bare_cpu[@]}") / $(median "${paid_cpu[@]}")"
    ((${#redis_cpu[@]})) && cpu+=" + $(median "${redis_cpu[@]}")"
    rows+=("| $store | ${bare[*]} | ${paid[*]} | $b | $p | **$(ratio "$p" "$b")** | $cpu | $other |")
done

cat <<EOF

## Paid path per store, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model); load average at the start: $load_before, at the end: $(load_average).
Revision: ${BENCH_REVISION:-$revision}; $(rustc --version).
Command: \`${pin:+BENCH_PIN=1 }bench/stores.sh\` (wrk -t $threads -c $connections -d $duration, $rounds alternating rounds, loopback${pin:+; servers under test on CPU 0, wrk and redis-server on CPU 1}).
Fsync floor of the work folder's disk: $fsync_per_sec durable 4 KiB writes/s one at a time ($fsync_us µs each).

| store | bare req/s by round | paid req/s by round | bare median | paid median | paid/bare | CPU µs a request: bare / paid (+ redis-server) | not 200 or reused |
|---|---|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
EOF
