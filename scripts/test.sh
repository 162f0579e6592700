#!/usr/bin/env bash
# The test command (README's second command, and what CI runs): every Rust
# test in the workspace, then the curl smoke test against a live stack.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
bash scripts/smoke.sh
