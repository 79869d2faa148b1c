#!/usr/bin/env bash
# Instructions per request: bare axum, `plannt serve`'s free route, and its paid path.
#
#   bench/instructions.sh    build (profiling profile) once, count, print a Markdown table
#
# Throughput and even CPU time move with whatever else runs on the machine; the number of
# instructions a server executes per answer does not. Each server runs under valgrind's callgrind
# (which counts every instruction of every thread), and bench/requests.mjs sends it a fixed number
# of requests over CONNECTIONS keep-alive connections: WARMUP requests first (connections opened,
# lazy set-up done), then callgrind's counters are zeroed (`callgrind_control -z`), then COUNT
# requests, every one answered 200, then the counters are dumped (`callgrind_control -d`). The
# instructions in that dump divided by COUNT is the figure. Servers, in turn: the bare axum handler
# (crates/gateway/examples/axum_layer.rs, its free `GET /`), a fresh `plannt serve`'s free
# `GET /status`, and fresh `plannt serve`s answering paid `GET /v1/demo` on the memory store with
# answers kept (the default) and not kept (keep_answer_bytes = 0), every paid request with a token
# of its own (bought beforehand by bench/mint.mjs from a gateway not under valgrind).
#
# Valgrind's CPU has no SHA extensions, so `sha2` runs its portable code under it and SHA-256
# counts for far more instructions than it costs natively (its SHA-NI path): the table gives each
# count also without the instructions of `sha2::sha256::compress256`, the rest being the code the
# machine runs. Use the counts to compare builds, not as time.
#
# Needs valgrind and node. Settings (environment): BENCH_COUNT (20000), BENCH_WARMUP (2000),
# BENCH_CONNECTIONS (32), BENCH_ROUNDS (1), BENCH_SIDES ("bare free paid-kept paid-unkept"),
# BENCH_PROFILE (profiling: the release code with symbols, so the dumps can be read with
# callgrind_annotate), BENCH_BUILT=DIR (no build: DIR/plannt and DIR/examples/axum_layer as they
# are, say copies of an earlier revision's build to compare with), BENCH_KEEP=1 keeps the work
# folder with every dump.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

count=${BENCH_COUNT:-20000}
warmup=${BENCH_WARMUP:-2000}
connections=${BENCH_CONNECTIONS:-32}
rounds=${BENCH_ROUNDS:-1}
read -r -a sides <<<"${BENCH_SIDES:-bare free paid-kept paid-unkept}"
profile=${BENCH_PROFILE:-profiling}

require valgrind callgrind_control node
if [[ -n ${BENCH_BUILT:-} ]]; then
    release=$(cd "$BENCH_BUILT" && pwd)
    require "$release/plannt" "$release/examples/axum_layer"
    profile="$profile, prebuilt in $BENCH_BUILT"
else
    build plannt
    build plannt-gateway --example axum_layer
fi

paid_sides=0
for side in "${sides[@]}"; do
    case $side in
        bare | free) ;;
        paid-kept | paid-unkept) paid_sides=$((paid_sides + 1)) ;;
        *) die "unknown side: $side (bare, free, paid-kept, paid-unkept)" ;;
    esac
done
tokens=$(((warmup + count) * paid_sides * rounds))
if ((tokens > 0)); then
    start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
    node bench/mint.mjs "http://$addr" "$tokens" 16 "$work/tokens.txt"
    stop mint
fi
next_token=1

callgrind=(valgrind --tool=callgrind --quiet)

# count_side NAME PID URL [TOKENS]: the requests, bracketed by callgrind_control; sets m_ir, the
# instructions per request, and m_sha, those of them in SHA-256's compression. With TOKENS, the
# next WARMUP + COUNT lines of tokens.txt.
count_side() {
    local name=$1 server=$2 url=$3 with_tokens=${4:-} file=()
    if [[ -n $with_tokens ]]; then
        sed -n "${next_token},$((next_token + warmup + count - 1))p" "$work/tokens.txt" >"$work/$name.tokens"
        next_token=$((next_token + warmup + count))
        file=("$work/$name.tokens")
    fi
    echo "==> $name: $warmup + $count requests to $url" >&2
    rm -f "$work/$name.out".*
    REQUESTS_BEFORE="callgrind_control -z $server" REQUESTS_AFTER="callgrind_control -d $server" \
        node bench/requests.mjs "$url" "$warmup" "$count" "$connections" "${file[@]}"
    local dump
    dump=$(find "$work" -maxdepth 1 -name "$name.out.*" | sort | head -n 1)
    [[ -n $dump ]] || die "$name: callgrind wrote no dump"
    local ir
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    [[ -n $ir ]] || die "$name: no instruction total in $dump"
    # SHA-256's compression function's own instructions (its portable code under valgrind).
    local sha
    sha=$(callgrind_annotate --threshold=100 --auto=no "$dump" 2>/dev/null |
        awk '/sha2::sha256::compress256/ { gsub(",", "", $1); n += $1 } END { print n + 0 }')
    m_ir=$((ir / count))
    m_sha=$((sha / count))
    echo "==> $name: $ir instructions, $m_ir per request, $m_sha of them SHA-256's compression ($dump)" >&2
}

declare -A ir nosha
for round in $(seq "$rounds"); do
    for side in "${sides[@]}"; do
        name=$side-$round
        out=(--callgrind-out-file="$work/$name.out")
        case $side in
            bare)
                printf '#!/bin/sh\nexec %s %s "%s"\n' "${callgrind[*]}" "${out[*]}" \
                    "$release/examples/axum_layer" >"$work/bare.sh"
                chmod +x "$work/bare.sh"
                start_example "$name" "$work/bare.sh"
                count_side "$name" "$pid" "http://$addr/"
                ;;
            free)
                serve_prefix=("${callgrind[@]}" "${out[@]}")
                start "$name" -- --store memory
                count_side "$name" "$pid" "http://$addr/status"
                ;;
            paid-kept)
                serve_prefix=("${callgrind[@]}" "${out[@]}")
                start "$name" -- --store memory
                count_side "$name" "$pid" "http://$addr/v1/demo" tokens
                ;;
            paid-unkept)
                serve_prefix=("${callgrind[@]}" "${out[@]}")
                start "$name" PLANNT_KEEP_ANSWER_BYTES=0 -- --store memory
                count_side "$name" "$pid" "http://$addr/v1/demo" tokens
                ;;
        esac
        stop "$name"
        ir[$side]+=" $m_ir"
        nosha[$side]+=" $((m_ir - m_sha))"
    done
done

cat <<EOF_TABLE

## Instructions per request, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model); $(valgrind --version); load average at the end: $(load_average).
Revision: ${BENCH_REVISION:-$revision}; $(rustc --version); profile $profile.
Command: \`bench/instructions.sh\` ($warmup requests to warm up, then $count counted, $connections connections, $rounds round(s)).

| server | instructions per request by round | the same without SHA-256's compression |
|---|---|---|
EOF_TABLE
declare -A names=([bare]="bare axum" [free]="plannt serve, free /status" [paid-kept]="plannt serve, paid, memory, answers kept" [paid-unkept]="plannt serve, paid, memory, not kept")
for side in "${sides[@]}"; do
    echo "| ${names[$side]} |${ir[$side]} |${nosha[$side]} |"
done
