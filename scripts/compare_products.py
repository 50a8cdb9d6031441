"""Compares the products of one recipe in two stores by their data, ignoring what carries the
pipeline version and activity keys: HDF5 attributes, FITS header cards, the provenance fields of
model headers and JSON summaries, content hashes of inputs (which embed those), and the model
checksum. Used to show a refactoring did not move the science:

    scripts/compare_products.py STORE_A STORE_B [RECIPE_NAME]   (default: quickstart)

Exits 1 when a product's data differ, naming it and the datasets, HDUs or fields."""
import sys, os, json, gzip, hashlib
import numpy as np, h5py
from astropy.io import fits

import re

a_root, b_root = sys.argv[1], sys.argv[2]
recipe = sys.argv[3] if len(sys.argv) > 3 else "quickstart"
VOLATILE = ("activity_key", "pipeline_version")
HASH_SUFFIX = re.compile(r"_[0-9a-f]{12}$")

def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if not any(t in k for t in VOLATILE) and k != "sha256"}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o

def same_array(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.names:
        return all(same_array(x[n], y[n]) for n in x.dtype.names)
    if x.dtype.kind == "f":
        return np.array_equal(x, y, equal_nan=True)
    if x.dtype.kind in "SU":
        # HDU names of IRFs end with a prefix of their activity key.
        norm = np.vectorize(lambda v: HASH_SUFFIX.sub("", (v.decode() if isinstance(v, bytes) else str(v)).rstrip()), otypes=[object])
        return x.size == 0 or np.array_equal(norm(x), norm(y))
    return np.array_equal(x, y)

def h5(a, b):
    bad, n = [], 0
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append); fb.visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            return [f"objects differ: {set(names_a) ^ set(names_b)}"], 0
        for name in names_a:
            if isinstance(fa[name], h5py.Dataset):
                n += 1
                if not same_array(fa[name][()], fb[name][()]):
                    bad.append(name)
    return bad, n

def fits_cmp(a, b):
    bad, n = [], 0
    with fits.open(a) as ha, fits.open(b) as hb:
        if len(ha) != len(hb):
            return ["HDU count"], 0
        for x, y in zip(ha, hb):
            n += 1
            if x.data is None and y.data is None:
                continue
            if not same_array(np.asarray(x.data), np.asarray(y.data)):
                bad.append(x.name)
    return bad, n

def split_model(path):
    raw = open(path, "rb").read()
    start = raw.index(b"{")
    depth, i, in_str, esc = 0, start, False, False
    while True:
        c = raw[i:i+1]
        if in_str:
            if esc: esc = False
            elif c == b"\\": esc = True
            elif c == b'"': in_str = False
        elif c == b'"': in_str = True
        elif c == b"{": depth += 1
        elif c == b"}":
            depth -= 1
            if depth == 0: break
        i += 1
    # magic and version before the header length; the forest after the header; a SHA-256 last.
    return raw[:12], json.loads(raw[start:i+1]), raw[i+1:-32]

total, differing = 0, []
view_a = os.path.join(a_root, "views", recipe)
for step in sorted(os.listdir(view_a)):
    for item in sorted(os.listdir(os.path.join(view_a, step))):
        for f in sorted(os.listdir(os.path.join(view_a, step, item))):
            pa = os.path.join(view_a, step, item, f)
            pb = os.path.join(b_root, "views", recipe, step, item, f)
            total += 1
            if f.endswith(".h5"):
                bad, n = h5(pa, pb); what = f"{n} datasets"
            elif ".fits" in f:
                bad, n = fits_cmp(pa, pb); what = f"{n} HDUs"
            elif f.endswith(".rf"):
                ma, mb = split_model(pa), split_model(pb)
                bad = [] if (ma[0] == mb[0] and ma[2] == mb[2] and strip(ma[1]) == strip(mb[1])) else ["model"]
                what = f"{len(ma[2])} forest bytes"
            elif f.endswith(".json"):
                bad = [] if strip(json.load(open(pa))) == strip(json.load(open(pb))) else ["json"]; what = "json"
            else:
                bad = [] if open(pa, "rb").read() == open(pb, "rb").read() else ["bytes"]; what = "bytes"
            status = "same" if not bad else f"DIFFERS {bad}"
            if bad: differing.append(f"{step}/{item}/{f}")
            print(f"{step}/{item}/{f}: {what}: {status}")
print(f"{total} products compared, {len(differing)} differ: {differing}")
sys.exit(1 if differing else 0)
