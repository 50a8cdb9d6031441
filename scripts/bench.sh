#!/usr/bin/env bash
# Benchmarks, with Snakemake from the project's virtualenv as the reference where asked for.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
export PATH="$HOME/.cargo/bin:$PATH"
SNAKEMAKE="$PWD/.venv/bin/snakemake" cargo bench --bench engine
cargo bench --bench provenance
cargo bench --bench image
SNAKEMAKE="$PWD/.venv/bin/snakemake" cargo bench --bench slurm
