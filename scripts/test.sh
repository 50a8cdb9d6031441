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
# The SLURM executor's tests need a real SLURM: the one that answers here, else a single-node
# one started now (as root; see scripts/slurm_local/) and stopped with its state wiped at exit.
if ! sinfo -h >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    SLURM_LOCAL_CPUS=8 bash scripts/slurm_local/start-slurm.sh >&2
    trap 'bash scripts/slurm_local/stop-slurm.sh --wipe >&2' EXIT
  else
    echo "test: no SLURM answers and this is not root: the SLURM executor's tests will be skipped" >&2
  fi
fi
SST1MFLOW_BIN="$PWD/target/debug/sst1mflow" SST1MFLOW_RELEASE_BIN="$PWD/target/release/sst1mflow" \
    .venv/bin/python -m pytest -q -rs tests/interop
