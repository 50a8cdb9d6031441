#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build, and run the shipped recipe
# into ./store. Run it again and everything is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
RECIPE=${1:-recipes/demo.json}
./target/release/sst1mflow run "$RECIPE"
