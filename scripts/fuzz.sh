#!/usr/bin/env bash
# Fuzzes the native raw-input readers with cargo-fuzz (libFuzzer; needs the nightly toolchain
# and `cargo install cargo-fuzz`). Seeds come from the real sample files in ../shared/data.
# Usage: scripts/fuzz.sh [zfits|simtel|all] [SECONDS per target, default 600]
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
seconds=${2:-600}
data=../shared/data
seed() {
  local target=$1; shift
  mkdir -p "fuzz/corpus/$target"
  for f in "$@"; do [ -f "$f" ] && cp -f "$f" "fuzz/corpus/$target/" || true; done
}
seed zfits "$data/r0_zfits/SST1M_01_20180822_001.fits.fz" "$data/r0_zfits/10_CTA_R1_dummy_evts.fits.fz"
mkdir -p fuzz/corpus/simtel
if [ -f "$data/mc_simtel/1_triggered_events_10_TeV.simtel.gz" ]; then
  cp -f "$data/mc_simtel/1_triggered_events_10_TeV.simtel.gz" fuzz/corpus/simtel/
  gzip -dc "$data/mc_simtel/1_triggered_events_10_TeV.simtel.gz" > fuzz/corpus/simtel/1_triggered_events_10_TeV.simtel
fi
for target in zfits simtel; do
  [ "$which" = all ] || [ "$which" = "$target" ] || continue
  echo "fuzzing $target for $seconds s" >&2
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=1048576 -rss_limit_mb=4096 -timeout=20 -print_final_stats=1
done
