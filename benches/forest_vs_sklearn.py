"""sst1mflow's random forests against scikit-learn on identical simulator data.

Runs `benches/rf_bench.json` (simulated diffuse gammas and protons -> DL1, cached in the bench
store), applies sst1mpipe's event selection and finite check with pandas, writes the training
and test matrices as raw files, and trains both implementations on them with sst1mpipe's forest
arguments (regressor: 150 trees, classifier: 100 trees; max_depth 30, min_samples_split 10,
min_samples_leaf 10; scikit-learn's default max_features) and the same number of threads:

* energy regressor on log10(true energy) of gammas;
* gamma/hadron classifier on gammas and protons (1:1).

Prints fit and predict times, the ratios, peak memory, ROC AUC, and energy bias and
resolution (median and half the 16-84% interval of (E_reco - E_true) / E_true) per true-energy
bin, and writes everything to target/bench/forest_vs_sklearn.json.

Usage: python benches/forest_vs_sklearn.py [--threads 2] [--train-events 200000]
(The first run simulates about 2 million showers: about 40 minutes and 60 GB on 2 cores.)
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "target" / "bench-store"
OUT = ROOT / "target" / "bench"
# SST1MFLOW_BIN: a prebuilt binary (e.g. the one that made a cached bench store), else a fresh build.
BIN = Path(os.environ.get("SST1MFLOW_BIN", ROOT / "target" / "release" / "sst1mflow"))
FIT = ROOT / "target" / "release" / "examples" / "forest_fit"
CONFIG = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
TABLE = "/dl1/event/telescope/parameters/tel_001"


def mono(features):
    return [f for f in features if not f.startswith("HillasReconstructor_")]


ENERGY_FEATURES = mono(CONFIG["energy_regression_features"])
GH_FEATURES = mono(CONFIG["particle_classification_features"])


def load(step):
    df = pd.read_hdf(STORE / "views" / "rf-bench" / step / "all" / "dl1.h5", key=TABLE)
    for col, (lo, hi) in CONFIG["event_selection"].items():
        df = df[(df[col] >= lo) & (df[col] <= hi)]
    cols = sorted(set(ENERGY_FEATURES + GH_FEATURES))
    return df[np.isfinite(df[cols]).all(axis=1)]


def sklearn_run(task, xtr, ytr, xte, threads):
    """Fits in a child process, so its peak memory is its own."""
    code = f"""
import numpy as np, time, resource, json, sys
from sklearn.ensemble import RandomForestRegressor, RandomForestClassifier
xtr = np.fromfile('{xtr}', dtype=np.float32).reshape(-1, {len_features(task)})
ytr = np.fromfile('{ytr}')
xte = np.fromfile('{xte}', dtype=np.float32).reshape(-1, {len_features(task)})
args = dict(max_depth=30, min_samples_split=10, min_samples_leaf=10, bootstrap=True, random_state=42, n_jobs={threads})
if '{task}' == 'regressor':
    m = RandomForestRegressor(n_estimators=150, **args)
else:
    m = RandomForestClassifier(n_estimators=100, **args)
t = time.time(); m.fit(xtr, ytr); fit = time.time() - t
t = time.time()
p = m.predict(xte) if '{task}' == 'regressor' else m.predict_proba(xte)[:, 1]
pred = time.time() - t
p.astype(np.float64).tofile('{OUT}/sk_{task}.f64')
print(json.dumps(dict(fit_s=fit, predict_s=pred, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout), np.fromfile(OUT / f"sk_{task}.f64")


def len_features(task):
    return len(ENERGY_FEATURES) if task == "regressor" else len(GH_FEATURES)


def ours_run(task, xtr, ytr, xte, threads):
    n_trees = "150" if task == "regressor" else "100"
    max_features = "all" if task == "regressor" else "sqrt"
    pred = OUT / f"ours_{task}.f64"
    out = subprocess.run(
        [str(FIT), "classifier" if task == "classifier" else "regressor", str(len_features(task)),
         str(xtr), str(ytr), str(xte), str(pred), n_trees, max_features, str(threads)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout), np.fromfile(pred)


def energy_table(true_e, reco_e):
    edges = np.logspace(-0.3, 2.3, 14)
    rows = []
    rel = (reco_e - true_e) / true_e
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (true_e >= lo) & (true_e < hi)
        if m.sum() < 50:
            continue
        q16, q50, q84 = np.percentile(rel[m], [16, 50, 84])
        rows.append(dict(e_lo=lo, e_hi=hi, n=int(m.sum()), bias=q50, resolution=(q84 - q16) / 2))
    return rows


def auc(score, positive):
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(positive, score)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-events", type=int, default=200_000)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = ["--example", "forest_fit"] + ([] if "SST1MFLOW_BIN" in os.environ else ["--bin", "sst1mflow"])
    subprocess.run(["cargo", "build", "--release", "--quiet"] + wanted, cwd=ROOT, check=True)
    t = time.time()
    subprocess.run([str(BIN), "--store", str(STORE), "run", "--quiet", "-j", str(args.threads),
                    str(ROOT / "benches" / "rf_bench.json")], check=True)
    print(f"simulation and DL1 ready ({time.time() - t:.0f} s)", file=sys.stderr)
    g_train, p_train = load("dl1-gamma-train"), load("dl1-proton-train")
    g_test, p_test = load("dl1-gamma-test"), load("dl1-proton-test")
    n = args.train_events
    rng = np.random.default_rng(42)
    if len(g_train) < n:
        sys.exit(f"only {len(g_train)} selected training gammas; need {n}")
    g_reg = g_train.iloc[np.sort(rng.choice(len(g_train), n, replace=False))]
    half = min(n // 2, len(p_train), len(g_train))
    g_cls = g_train.iloc[np.sort(rng.choice(len(g_train), half, replace=False))]
    p_cls = p_train.iloc[np.sort(rng.choice(len(p_train), half, replace=False))]
    results = {"threads": args.threads}

    def write(name, frame, features):
        path = OUT / name
        frame[features].to_numpy(np.float32).tofile(path)
        return path

    # Energy regressor.
    xtr = write("reg_xtr.f32", g_reg, ENERGY_FEATURES)
    ytr = OUT / "reg_ytr.f64"
    g_reg["log_true_energy"].to_numpy(np.float64).tofile(ytr)
    xte = write("reg_xte.f32", g_test, ENERGY_FEATURES)
    reg = {}
    for name, run in [("sst1mflow", ours_run), ("sklearn", sklearn_run)]:
        stats, pred = run("regressor", xtr, ytr, xte, args.threads)
        stats["energy"] = energy_table(g_test["true_energy"].to_numpy(), 10 ** pred)
        reg[name] = stats
        print(f"regressor {name}: fit {stats['fit_s']:.1f} s, predict {stats['predict_s']:.2f} s, "
              f"peak {stats['peak_rss_mb']:.0f} MB", flush=True)
    results["regressor"] = reg

    # Gamma/hadron classifier (class 1 = proton, as in the model files).
    train = pd.concat([g_cls, p_cls])
    xtr = write("cls_xtr.f32", train, GH_FEATURES)
    ytr = OUT / "cls_ytr.f64"
    np.r_[np.zeros(len(g_cls)), np.ones(len(p_cls))].tofile(ytr)
    test = pd.concat([g_test, p_test])
    xte = write("cls_xte.f32", test, GH_FEATURES)
    is_gamma = np.r_[np.ones(len(g_test), bool), np.zeros(len(p_test), bool)]
    above_1tev = test["true_energy"].to_numpy() > 1.0
    cls = {}
    for name, run in [("sst1mflow", ours_run), ("sklearn", sklearn_run)]:
        stats, p_proton = run("classifier", xtr, ytr, xte, args.threads)
        gammaness = 1 - p_proton
        stats["auc"] = auc(gammaness, is_gamma)
        stats["auc_above_1tev"] = auc(gammaness[above_1tev], is_gamma[above_1tev])
        true_e = test["true_energy"].to_numpy()
        stats["auc_per_bin"] = []
        for lo, hi in [(0.5, 1), (1, 2), (2, 5), (5, 10), (10, 30), (30, 200)]:
            m = (true_e >= lo) & (true_e < hi)
            if is_gamma[m].sum() >= 50 and (~is_gamma[m]).sum() >= 50:
                stats["auc_per_bin"].append(dict(e_lo=lo, e_hi=hi, auc=auc(gammaness[m], is_gamma[m])))
        cls[name] = stats
        print(f"classifier {name}: fit {stats['fit_s']:.1f} s, predict {stats['predict_s']:.2f} s, "
              f"peak {stats['peak_rss_mb']:.0f} MB, AUC {stats['auc']:.4f}", flush=True)
    results["classifier"] = cls
    results["train_events"] = {"regressor": len(g_reg), "classifier": len(train)}
    results["test_events"] = {"gamma": len(g_test), "proton": len(p_test)}
    (OUT / "forest_vs_sklearn.json").write_text(json.dumps(results, indent=1))

    print(f"\ntraining events: regressor {len(g_reg)}, classifier {len(train)}; test: {len(g_test)} gammas, "
          f"{len(p_test)} protons; {args.threads} threads")
    for task in ("regressor", "classifier"):
        o, s = results[task]["sst1mflow"], results[task]["sklearn"]
        print(f"{task:10s}  fit: {o['fit_s']:7.1f} s vs {s['fit_s']:7.1f} s  -> {s['fit_s'] / o['fit_s']:5.1f}x faster"
              f"   predict: {o['predict_s']:5.2f} s vs {s['predict_s']:5.2f} s -> {s['predict_s'] / o['predict_s']:4.1f}x"
              f"   peak memory: {o['peak_rss_mb']:.0f} MB vs {s['peak_rss_mb']:.0f} MB")
    o, s = cls["sst1mflow"], cls["sklearn"]
    print(f"ROC AUC: {o['auc']:.4f} vs {s['auc']:.4f} (difference {o['auc'] - s['auc']:+.4f}); "
          f"above 1 TeV {o['auc_above_1tev']:.4f} vs {s['auc_above_1tev']:.4f}")
    print("ROC AUC per true-energy bin (TeV): " + ", ".join(
        f"{a['e_lo']}-{a['e_hi']}: {a['auc']:.3f} / {b['auc']:.3f}" for a, b in zip(o["auc_per_bin"], s["auc_per_bin"])))
    print("energy bin (TeV)      n    bias ours / sklearn    resolution ours / sklearn   rel. diff")
    worst = 0.0
    for a, b in zip(reg["sst1mflow"]["energy"], reg["sklearn"]["energy"]):
        rel = a["resolution"] / b["resolution"] - 1
        worst = max(worst, abs(rel)) if a["n"] >= 200 else worst
        print(f"{a['e_lo']:7.2f} - {a['e_hi']:7.2f} {a['n']:6d}   {a['bias']:+.3f} / {b['bias']:+.3f}"
              f"        {a['resolution']:.3f} / {b['resolution']:.3f}           {rel:+.1%}")
    print(f"largest relative resolution difference (bins with >= 200 events): {worst:.1%}")


if __name__ == "__main__":
    main()
