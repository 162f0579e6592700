#!/usr/bin/env bash
# Convergence at scale (see benches/convergence.rs): start -> ready and RSS
# after sync at 10,000 and 50,000 Ingresses, and at 10,000 the p50/p99 time
# from an API write until the proxy routes accordingly, plus the cache
# thread's CPU per change, for 50 changes of each kind.
#
# Not a test and not run in CI. Knobs: CHANGES (50), BASE_PORT (21000),
# SIZES ("10000 50000"; changes are measured at the first size only).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CHANGES:=50}"
: "${BASE_PORT:=21000}"
: "${SIZES:=10000 50000}"

echo "building release binaries" >&2
cargo build --release --quiet --bin ingressd
first=1
for size in $SIZES; do
    changes=0
    [ "$first" = 1 ] && changes=$CHANGES
    first=0
    INGRESSES=$size CHANGES=$changes BASE_PORT=$BASE_PORT INGRESSD="$PWD/target/release/ingressd" \
        cargo bench --quiet --bench convergence
done
