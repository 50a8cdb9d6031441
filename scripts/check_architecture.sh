#!/usr/bin/env bash
# Checks the rules of ARCHITECTURE.md that a machine can check: the crate graph (from
# `cargo metadata`) and where SQL, file access and the database may appear. Exits non-zero,
# naming each broken rule and where, when one is broken.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
fail=0
broken() { echo "architecture: $*" >&2; fail=1; }

# 1, 2: the crate graph. Allowed workspace dependencies of each crate (normal and build deps).
cargo metadata --format-version 1 --no-deps --offline 2>/dev/null >/tmp/sst1mflow-metadata.$$.json \
  || cargo metadata --format-version 1 --no-deps >/tmp/sst1mflow-metadata.$$.json
python3 - /tmp/sst1mflow-metadata.$$.json <<'PY' || fail=1
import json, sys
meta = json.load(open(sys.argv[1]))
ours = {p["name"] for p in meta["packages"]}
allowed = {
    "sst1mflow-base": set(),
    "sst1mflow-science": {"sst1mflow-base"},
    "sst1mflow-io": {"sst1mflow-base", "sst1mflow-science"},
    "sst1mflow-engine": {"sst1mflow-base"},
    "sst1mflow": {"sst1mflow-base", "sst1mflow-science", "sst1mflow-io", "sst1mflow-engine"},
}
# External crates that would break a layer: files in science, SQL or HDF5 where they don't belong.
forbidden = {
    "sst1mflow-base": {"hdf5-metno"},
    "sst1mflow-science": {"hdf5-metno", "hdf5-metno-sys", "rusqlite"},
    "sst1mflow-io": {"rusqlite"},
    "sst1mflow-engine": {"hdf5-metno", "hdf5-metno-sys"},
    "sst1mflow": {"hdf5-metno", "hdf5-metno-sys", "rusqlite"},
}
ok = True
for p in meta["packages"]:
    if p["name"] not in allowed:
        print(f"architecture: workspace crate {p['name']} is not in the rules (ARCHITECTURE.md)", file=sys.stderr)
        ok = False
        continue
    deps = {d["name"] for d in p["dependencies"] if d["name"] in ours and d.get("kind") in (None, "build")}
    for d in sorted(deps - allowed[p["name"]]):
        print(f"architecture: {p['name']} must not depend on {d}", file=sys.stderr)
        ok = False
    external = {d["name"] for d in p["dependencies"] if d.get("kind") in (None, "build")}
    for d in sorted(external & forbidden[p["name"]]):
        print(f"architecture: {p['name']} must not depend on {d} (ARCHITECTURE.md, rules)", file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY
rm -f /tmp/sst1mflow-metadata.$$.json

# grep without matches is success here; `|| true` keeps set -e quiet.
hits() { grep -rnE "$1" "${@:2}" 2>/dev/null | grep -vE '^\S+:[0-9]+:\s*//' || true; }

# 1: no file access in the science crate (tests may print).
found=$(hits 'std::fs|File::(open|create)|OpenOptions|hdf5::|rusqlite' crates/science/src)
[ -z "$found" ] || broken "the science crate touches files:"$'\n'"$found"

# 3: SQL only in the provenance module.
found=$(hits 'rusqlite|\.conn\(\)' src crates --include='*.rs' | grep -v '^crates/engine/src/provenance/' \
        | grep -v '^crates/base/src/error.rs' || true)
[ -z "$found" ] || broken "SQL outside crates/engine/src/provenance:"$'\n'"$found"

# 4: a stage never sees the database or the store.
found=$(hits 'provenance::|\bDb\b|crate::store|sst1mflow_engine::store' src/stages)
[ -z "$found" ] || broken "a stage reaches the database or the store:"$'\n'"$found"

# 10: the store never opens the database; only the runner runs a stage.
found=$(hits 'provenance|\bDb\b' crates/engine/src/store)
[ -z "$found" ] || broken "the store reaches the database:"$'\n'"$found"
found=$(hits 'run\(&mut StageContext' src crates --include='*.rs' | grep -v '^crates/engine/src/runner.rs' || true)
[ -z "$found" ] || broken "a stage is run outside crates/engine/src/runner.rs:"$'\n'"$found"

# 11: a cluster job never opens the database (only the coordinating run does).
found=$(hits '\bDb\b|Db::open|rusqlite' crates/engine/src/slurm)
[ -z "$found" ] || broken "the SLURM executor's job side reaches the database:"$'\n'"$found"

# 5: HDF5 only through the io crate.
found=$(hits '\bhdf5(_sys)?::|H5Type' src)
[ -z "$found" ] || broken "HDF5 used outside crates/io:"$'\n'"$found"

[ "$fail" = 0 ] && echo "architecture: the crate graph and the layering rules hold" >&2
exit "$fail"
