#!/usr/bin/env bash
# Redis failover under paid load: the Sentinel drill of crates/gateway (the test
# store::tests::redis_sentinel::failover_drill_loses_no_spent_token_when_commits_wait_for_a_replica)
# run N times, then a Markdown table of what each run saw.
#
#   bench/failover.sh        10 runs of the drill (BENCH_PROFILE, release by default)
#
# Each run of the test does the drill twice, on fresh processes each time: one primary, one
# replica and three Sentinels (quorum 2, down after 500 ms, failover timeout 2 s) on loopback;
# the Redis store through `redis+sentinel://`, 8 tasks claiming and committing fresh tokens; after
# 1 s `kill -9` of the primary; the Sentinels promote the replica; the killed server comes back as
# the new primary's replica; the load goes on until a commit succeeds again. Then every token
# whose commit was answered is claimed once more on the new primary: a claim that wins is a token
# the failover forgot (it would be accepted a second time). The first drill answers once the
# primary holds a write (no wait), the second waits for one replica (`WAIT 1 500`, what
# `redis_wait_replicas = 1` sets). The test asserts that the second forgets nothing; the first
# is counted, not asserted.
#
# Needs cargo and redis-server (Debian: apt-get install redis-server).
# Settings (environment): BENCH_RUNS (10), BENCH_PROFILE (release), BENCH_KEEP=1 keeps the work
# folder (the tests' output).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

runs=${BENCH_RUNS:-10}
require cargo redis-server

test=store::tests::redis_sentinel::failover_drill_loses_no_spent_token_when_commits_wait_for_a_replica
log=$work/test.log
started=$(date -u '+%Y-%m-%d %H:%M UTC')
if ! git diff --quiet HEAD -- crates 2>/dev/null; then
    revision="$revision (with uncommitted changes under crates/)"
fi

echo "==> cargo test --profile $profile --locked -p plannt-gateway --lib --no-run" >&2
cargo test --profile "$profile" --locked -p plannt-gateway --lib --no-run >&2
status=0
for ((run = 1; run <= runs; run++)); do
    echo "==> run $run of $runs: $test" >&2
    if ! cargo test --profile "$profile" --locked -p plannt-gateway --lib "$test" -- --exact --nocapture 2>&1 |
        tee -a "$log" | grep '^failover-drill ' | sed "s/^/run=$run /" >>"$work/rows"; then
        status=1
    fi
    if grep -q "test result: FAILED\|panicked" "$log"; then
        status=1
    fi
done

cat <<EOF

Command: \`BENCH_RUNS=$runs bench/failover.sh\` ($profile build)
Machine: $(nproc) cores, Linux $(uname -r), $(redis-server --version | cut -d' ' -f1-3); started $started, load average $load_before at the start, $(load_average) at the end; revision $revision.

| run | wait for replicas | claims + commits per second before the kill | tokens committed | accepted again after the failover | failed claims and commits during the switch | replica promoted after | store serving again after |
|---:|---|---:|---:|---:|---:|---:|---:|
EOF
# Lines: run=N failover-drill wait=off ops_per_second=… committed=… accepted_again=… errors=… promoted_ms=… switch_ms=…
awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    mode = v["wait"] == "off" ? "no" : "WAIT " v["wait"]
    printf "| %s | %s | %s | %s | %s | %s | %s ms | %s ms |\n", v["run"], mode, v["ops_per_second"], v["committed"], v["accepted_again"], v["errors"], v["promoted_ms"], v["switch_ms"]
    n[mode]++; ops[mode] += v["ops_per_second"]; again[mode] += v["accepted_again"]; sw[mode] += v["switch_ms"]
}
END {
    print ""
    print "| wait for replicas | runs | mean claims + commits per second | tokens accepted again, all runs | mean time to serve again |"
    print "|---|---:|---:|---:|---:|"
    for (m in n) printf "| %s | %d | %.0f | %d | %.0f ms |\n", m, n[m], ops[m] / n[m], again[m], sw[m] / n[m]
}' "$work/rows"

if ((status != 0)); then
    echo "$script: a run failed; its output is in $log (BENCH_KEEP=1 keeps it)" >&2
fi
exit "$status"
