#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed (system packages, the Python
# virtualenv with gammapy), build, run the shipped recipe (recipes/quickstart.json: simulated
# Monte Carlo and observation runs to a DL3 data store) into ./store, then analyse the DL3 with
# gammapy (scripts/quickstart_analysis.py: spectrum, significance map, checks against the
# simulated source; plot in store/quickstart_analysis.png). Pass another recipe as the first
# argument to run that instead (recipes/quickstart-stereo.json, the same in stereo, is analysed
# the same way). Run it again and everything is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
RECIPE=${1:-recipes/quickstart.json}
STORE=${SST1MFLOW_STORE:-store}
./target/release/sst1mflow --store "$STORE" run "$RECIPE"
case "$RECIPE" in
    recipes/quickstart.json | recipes/quickstart-stereo.json)
        NAME=$(basename "$RECIPE" .json)
        .venv/bin/python scripts/quickstart_analysis.py "$STORE/views/$NAME/datastore/all" "$RECIPE" \
            --png "$STORE/${NAME//-/_}_analysis.png"
        ;;
esac
