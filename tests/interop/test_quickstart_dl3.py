"""The README's main job, end to end: the quickstart recipe from nothing to a DL3 data store
(release build), then gammapy, astropy and pandas on what it made: the shipped analysis script
detects the simulated source and recovers its spectrum, every observation loads with its IRFs,
event times mean what the headers say, and a second run reuses everything."""
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", str(ROOT / "target" / "release" / "sst1mflow"))
RECIPE = ROOT / "recipes" / "quickstart.json"


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    if not pathlib.Path(BIN).exists():
        pytest.skip(f"release binary {BIN} not built (cargo build --release)")
    store = tmp_path_factory.mktemp("quickstart") / "store"
    t0 = time.time()
    run = subprocess.run([BIN, "--store", str(store), "-q", "run", str(RECIPE)], capture_output=True, text=True)
    elapsed = time.time() - t0
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"quickstart from scratch: {elapsed:.1f} s")
    return store, run.stdout, elapsed


def test_summary_names_the_data_store(quickstart):
    store, out, elapsed = quickstart
    assert "datastore" in out and "hdu-index.fits.gz" in out, out
    assert f"last step (datastore): {store}/views/quickstart/datastore/all" in out, out
    assert elapsed < 600, f"the quickstart took {elapsed:.0f} s"


def test_second_run_reuses_everything(quickstart):
    store, _, _ = quickstart
    t0 = time.time()
    run = subprocess.run([BIN, "--store", str(store), "--json", "run", str(RECIPE)], capture_output=True, text=True)
    wall = time.time() - t0
    report = json.loads(run.stdout)
    assert report["ran"] == 0 and report["reused"] == len(report["activities"]), report
    print(f"second run: {wall:.2f} s")
    assert wall < 2.0


def test_gammapy_analysis_detects_the_source_and_recovers_its_spectrum(quickstart, tmp_path):
    store, _, _ = quickstart
    png = tmp_path / "analysis.png"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "quickstart_analysis.py"),
                          str(store / "views" / "quickstart" / "datastore" / "all"), str(RECIPE),
                          "--png", str(png), "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    print(json.dumps({k: report[k] for k in ("significance", "excess", "index", "index_err", "amplitude_1tev",
                                             "amplitude_err", "fit_range_tev")}))
    assert all(report["checks"].values()), report
    assert report["significance"] > 5 and report["map_peak_significance"] > 5
    assert png.stat().st_size > 10_000


def test_every_observation_loads_with_its_irfs(quickstart):
    from astropy.io import fits
    from gammapy.data import DataStore

    store, _, _ = quickstart
    folder = store / "views" / "quickstart" / "datastore" / "all"
    ds = DataStore.from_dir(folder)
    hdu = ds.hdu_table
    assert {c.strip() for c in hdu["HDU_CLASS"]} == {"events", "gti", "aeff_2d", "edisp_2d", "psf_table", "bkg_2d"}
    assert list(ds.obs_table["OBS_ID"]) == [1001, 1002, 1003, 1004]
    for obs_id in ds.obs_table["OBS_ID"]:
        obs = ds.obs(obs_id)
        assert len(obs.events.table) > 50
        assert obs.aeff.data.max() > 1e3  # m2
        assert obs.edisp is not None and obs.psf is not None and obs.bkg is not None
        assert abs(obs.observation_live_time_duration.to_value("s") - 80) < 1e-6
        assert obs.pointing.fixed_icrs.separation(obs.target_radec).deg == pytest.approx(0.4, abs=1e-6)
    # Each DL3 product on its own (one per observation) is a complete GADF file too.
    dl3 = sorted((store / "views" / "quickstart" / "dl3").glob("*/dl3.fits"))
    assert len(dl3) == 4
    with fits.open(dl3[0]) as f:
        names = [h.name for h in f]
        assert names == ["PRIMARY", "EVENTS", "GTI", "EFFECTIVE AREA", "ENERGY DISPERSION",
                         "POINT SPREAD FUNCTION", "BACKGROUND"], names
        h = f["EVENTS"].header
        for key in ("S1MKEY", "S1MVER", "IRFKEY", "CUTTABLE", "EVTSEL", "RFMODELS"):
            assert key in h, key
        assert h["GH_CUT"] == "energy-dependent"


def test_event_times_are_the_simulated_utc_times(quickstart):
    """TIME (TT seconds since MJDREF) converted by astropy equals the DL2 local_time (Unix UTC)."""
    from astropy.io import fits
    from astropy.time import Time, TimeDelta

    store, _, _ = quickstart
    views = store / "views" / "quickstart"
    with fits.open(views / "dl3" / "sim-obs-1001" / "dl3.fits") as f:
        h = f["EVENTS"].header
        ev = f["EVENTS"].data
        ref = Time(h["MJDREFI"] + h["MJDREFF"], format="mjd", scale=h["TIMESYS"].lower())
        t = ref + TimeDelta(ev["TIME"].astype(float), format="sec")
        ids = ev["EVENT_ID"]
        gti = f["GTI"].data
        start = (ref + TimeDelta(gti["START"][0], format="sec")).utc.unix
    dl2 = pd.read_hdf(views / "dl2-obs" / "sim-obs-1001" / "dl2.h5", key="/dl2/event/telescope/parameters/tel_001")
    local = dl2.set_index("event_id").loc[ids, "local_time"].to_numpy()
    assert np.max(np.abs(t.utc.unix - local)) < 1e-5
    assert start == pytest.approx(1667267400.0, abs=1e-5)


def test_performance_tables_agree_with_numpy_and_sklearn(quickstart):
    """The performance stage's tables, read by pandas, against numpy/scikit-learn recomputed
    from the same DL2; the figures are PNG and SVG files that matplotlib and an XML parser read."""
    import xml.etree.ElementTree as ET

    import matplotlib.image
    from sklearn.metrics import roc_auc_score

    store, _, _ = quickstart
    views = store / "views" / "quickstart"
    perf = views / "performance" / "all"
    h5 = perf / "performance.h5"
    tables = {k: pd.read_hdf(h5, key=k) for k in ("energy_resolution", "angular_resolution", "roc", "gammaness_cuts",
                                                   "theta_cuts", "sensitivity", "summary")}
    key = "/dl2/event/telescope/parameters/tel_001"
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())

    def selected(df):
        m = np.isfinite(df.reco_energy) & np.isfinite(df.gammaness) & np.isfinite(df.reco_alt)
        for col, (lo, hi) in cfg["event_selection"].items():
            m &= (df[col] >= lo) & (df[col] <= hi)
        return df[m]

    g = selected(pd.read_hdf(views / "dl2-gamma-point" / "all" / "dl2.h5", key=key))
    p = selected(pd.read_hdf(views / "dl2-proton-test" / "all" / "dl2.h5", key=key))
    auc = roc_auc_score(np.r_[np.ones(len(g)), np.zeros(len(p))], np.r_[g.gammaness, p.gammaness])
    summary = tables["summary"].iloc[0]
    print(f"ROC AUC {summary.roc_auc:.4f} (sklearn {auc:.4f}); Crab at 5 sigma in {summary.time_to_detection_s:.0f} s")
    assert summary.roc_auc == pytest.approx(auc, abs=1e-12)
    assert summary.n_gamma_selected == len(g) and summary.n_proton_selected == len(p)

    # Energy resolution per true-energy bin after the cut table, recomputed with numpy.
    cuts = tables["gammaness_cuts"]
    edges = np.r_[cuts.low.to_numpy(), cuts.high.to_numpy()[-1]]
    idx = np.searchsorted(edges, g.reco_energy.to_numpy(), side="right") - 1
    inside = (idx >= 0) & (idx < len(cuts))
    passed = np.zeros(len(g), bool)
    passed[inside] = g.gammaness.to_numpy()[inside] >= cuts.cut.to_numpy()[idx[inside]]
    gc = g[passed]
    res = tables["energy_resolution"]
    for _, b in res[res.n_events >= 20].iterrows():
        m = (gc.true_energy >= b.low) & (gc.true_energy < b.high)
        rel = ((gc.reco_energy - gc.true_energy) / gc.true_energy)[m]
        assert b.n_events == m.sum()
        assert b.resolution == pytest.approx(np.percentile(np.abs(rel), 68.27), rel=1e-9)
        assert b.bias == pytest.approx(np.median(rel), rel=1e-9, abs=1e-12)
    sens = tables["sensitivity"]
    ok = sens[np.isfinite(sens.relative_sensitivity)]
    assert len(ok) >= 3, sens
    assert (ok.flux_sensitivity_erg > 0).all()
    assert np.isfinite(summary.time_to_detection_s) and summary.time_to_detection_s > 0

    for name in ("energy_resolution", "angular_resolution", "roc", "sensitivity"):
        img = matplotlib.image.imread(perf / f"{name}.png")
        assert img.shape[0] == 560 and img.shape[1] == 800
        assert img[..., :3].std() > 0.05, f"{name}.png is not blank"
        root = ET.parse(perf / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")
        texts = "".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
        assert "TeV" in texts or "rate" in texts, name


def test_dl1_trigger_table_times_read_by_ctapipe(quickstart):
    """Observation-run DL1 has ctapipe's /dl1/event/subarray/trigger with MJD TAI times
    (ctapipe 0.17's format); ctapipe's read_table turns them into astropy Times equal to the simulated UTC times."""
    from ctapipe.io import read_table

    store, _, _ = quickstart
    dl1 = store / "views" / "quickstart" / "dl1-obs" / "sim-obs-1002" / "dl1.h5"
    trig = read_table(dl1, "/dl1/event/subarray/trigger")
    params = pd.read_hdf(dl1, key="/dl1/event/telescope/parameters/tel_001")
    assert list(trig["event_id"]) == list(params.event_id)
    assert set(trig["obs_id"]) == {1002} and set(trig["event_type"]) == {32}
    assert np.max(np.abs(trig["time"].utc.unix - params.local_time.to_numpy())) < 1e-6
    tel = read_table(dl1, "/dl1/event/telescope/trigger")
    assert list(tel["event_id"]) == list(params.event_id) and set(tel["tel_id"]) == {1}
    assert np.all(tel["time"] == trig["time"]) and trig["tels_with_trigger"].all()
