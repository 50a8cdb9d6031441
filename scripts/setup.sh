#!/usr/bin/env bash
# Installs what building and testing sst1mflow needs on a fresh Debian machine: the system
# packages (through apt, as root or with sudo) and, with --python, a virtualenv in .venv with
# the Python clients the interoperability tests and benchmarks use, and .venv-ctapipe017 with
# ctapipe 0.17.0 for the comparisons with what sst1mpipe computes. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# hdf5-filter-plugin-blosc-serial: ctapipe and sst1mpipe write their tables blosc-compressed
# (sst1m_array.h5, their DL1); the plugin lets libhdf5 (so our reader) decompress them.
APT_PACKAGES=(build-essential pkg-config ca-certificates graphviz libhdf5-dev hdf5-filter-plugin-blosc-serial fonts-dejavu-core)
# The second virtualenv holds ctapipe 0.17.0, the version sst1mpipe pins, with the versions of
# its dependencies it runs with (scipy < 1.14 keeps the sparse-matrix API it uses).
CTAPIPE017_PACKAGES=("ctapipe==0.17.0" "numpy==1.26.4" "scipy==1.13.1" "astropy==5.3.4" "numba==0.68.1" "tables==3.11.1")
PY_PACKAGES=(pytest prov numpy tables pandas h5py "ctapipe==0.28.0" "scikit-learn==1.9.1" "pyirf==0.13.0" "gammapy==2.1" "regions==0.11" "eventio==2.1.1" "protozfits==2.13.1" pillow)

with_python=0
with_bench=0
for arg in "$@"; do
  case "$arg" in
    --python) with_python=1 ;;
    --bench) with_python=1; with_bench=1 ;;
    *) echo "setup.sh: unknown option $arg (expected --python or --bench)" >&2; exit 2 ;;
  esac
done

# Tests only: headless Chromium renders the nightly summary page (test_nightly.py).
[ "$with_python" = 1 ] && APT_PACKAGES+=(chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: no apt-get here; please install: ${missing[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: no Rust toolchain found. Install one with rustup (https://rustup.rs), then re-run." >&2
    exit 1
  fi
fi

if [ "$with_python" = 1 ]; then
  PY=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PY" -m venv .venv
  fi
  pkgs=("${PY_PACKAGES[@]}")
  [ "$with_bench" = 1 ] && pkgs+=(snakemake snakemake-executor-plugin-slurm)
  .venv/bin/python -m pip install -q --disable-pip-version-check "${pkgs[@]}"
  if [ ! -x .venv-ctapipe017/bin/python ]; then
    echo "setup: creating .venv-ctapipe017 (ctapipe 0.17.0, as sst1mpipe pins)" >&2
    "$PY" -m venv .venv-ctapipe017
  fi
  .venv-ctapipe017/bin/python -m pip install -q --disable-pip-version-check "${CTAPIPE017_PACKAGES[@]}"
fi
