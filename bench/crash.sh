#!/usr/bin/env bash
# Crash safety under load, the long run: the crash_load tests of crates/cli/tests/cli in release
# mode for minutes and many kills, then a Markdown table of their counts.
#
#   bench/crash.sh        3 minutes of load and 20 kills per test, the tests one after the other
#
# Each test runs `plannt serve` on the SQLite store under six paying clients and kills it with
# SIGKILL PLANNT_CRASH_KILLS times, restarting it on the same port and files; then kills it once
# more and presents every token again (see the test's doc comment for what is asserted). The test
# fails, and so does this script, if a token got two 200s or two upstream calls, a token that got
# a 200 did not get the same answer (kept, `x-l402: replayed`) when presented again or was not
# refused as spent for another request, a 5xx came without `x-l402: released`, or a paid token
# ended spent without an answer its retry could get (a kill between its commit and its status
# line leaves the answer kept: counted).
#
# Settings (environment): PLANNT_CRASH_SECONDS (180), PLANNT_CRASH_KILLS (20), PLANNT_CRASH_SEED
# (a seed printed by an earlier run, to repeat its kill schedule), BENCH_KEEP=1 keeps the work
# folder (the tests' output).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export PLANNT_CRASH_SECONDS=${PLANNT_CRASH_SECONDS:-180}
export PLANNT_CRASH_KILLS=${PLANNT_CRASH_KILLS:-20}
require cargo

log=$work/test.log
started=$(date -u '+%Y-%m-%d %H:%M UTC')
if ! git diff --quiet HEAD -- crates 2>/dev/null; then
    revision="$revision (with uncommitted changes under crates/)"
fi

echo "==> cargo test --release --locked -p plannt --test cli crash_load:: ($PLANNT_CRASH_SECONDS s, $PLANNT_CRASH_KILLS kills per test)" >&2
set +e
cargo test --release --locked -p plannt --test cli crash_load:: -- --nocapture --test-threads=1 2>&1 |
    tee "$log" >&2
status=${PIPESTATUS[0]}
set -e

cat <<EOF

Command: \`PLANNT_CRASH_SECONDS=$PLANNT_CRASH_SECONDS PLANNT_CRASH_KILLS=$PLANNT_CRASH_KILLS bench/crash.sh\`
Machine: $(nproc) cores, Linux $(uname -r); started $started, load average $load_before at the start, $(load_average) at the end; revision $revision.
Seeds: $(grep -o 'crash load, [^:]*: .*PLANNT_CRASH_SEED=[0-9]*' "$log" | sed 's/^crash load, //' | paste -sd ';' | sed 's/;/; /g')

| run | load | kills (+ the final one) | tokens paid | 200 in the load | 5xx, released | requests cut by a kill | 200 after the load | kept answer after a kill between commit and status line | 200s replayed on retry | refused as spent for another request | spent without an answer | upstream answers ok / failed |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
grep '^crash-row ' "$log" | sed 's/^crash-row //'

if ((status != 0)); then
    echo "$script: the test failed (exit $status); its output is above" >&2
fi
exit "$status"
