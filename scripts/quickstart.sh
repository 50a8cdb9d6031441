#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build, and run the shipped recipe
# (recipes/quickstart.json: simulated MC to DL1; pass another recipe as the first argument)
# into ./store. Run it again and everything is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
RECIPE=${1:-recipes/quickstart.json}
./target/release/sst1mflow run "$RECIPE"
