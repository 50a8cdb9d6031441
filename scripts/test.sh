#!/usr/bin/env bash
# The test command: installs what is needed, checks formatting and lints, runs the Rust unit
# and integration tests, then the interoperability tests with real Python clients.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
scripts/check_architecture.sh
cargo test --workspace --quiet
cargo build --quiet
cargo build --quiet --examples
# The quickstart (a few minutes of physics) runs on the release build.
cargo build --quiet --release
SST1MFLOW_BIN="$PWD/target/debug/sst1mflow" SST1MFLOW_RELEASE_BIN="$PWD/target/release/sst1mflow" \
    .venv/bin/python -m pytest -q -rs tests/interop
