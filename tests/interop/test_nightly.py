"""Nightly processing (issue 22) on simulated raw nights, with the stereo quickstart as the
production (one node, zenith 28 deg; shared store, see conftest.py):

* a short night of the Crab at 30 times its flux, both telescopes, one run held back:
  `sst1mflow nightly` skips the DARK and Transition runs, analyses the Crab runs in cs1, cs2
  and stereo, and gammapy detects the Crab in each of the night's three data stores;
* the same night again is a no-op; the held-back run arriving redoes only its chain and the
  DL3 and indexes it belongs to (two nightly processes started at once compute it once);
* an invalidated calibration table: its telescope's runs are named and not analysed, the rest
  is reused; a replaced table redoes exactly the runs that use it;
* a night of bad input (a truncated raw file, a file that is not zfits, an unknown target, a
  telescope without calibration table, a target no production node is near): each named in
  the output and the summary, exit 1, the rest processed; an empty night: exit 0;
* the summary page in headless Chromium: what it shows.
"""
import json
import os
import pathlib
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", str(ROOT / "target" / "release" / "sst1mflow"))
ARRAY = ROOT.parent / "shared" / "data" / "sst1mpipe_data" / "sst1m_array.h5"
DATE = "2026-12-05"
HELD_BACK = 3  # run number that "arrives late"


def nightly(store, raw, config, *extra, date=DATE):
    cmd = [BIN, "--store", str(store), "--json", "nightly", "--raw", str(raw), "--date", date,
           "--production", "quickstart-stereo", "--config", str(config), "--subarray", str(ARRAY), *extra]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.time() - t0
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return r.returncode, json.loads(r.stdout), elapsed, r.stderr


def ran_steps(summary_stdout_json, store):
    """Steps that ran, from the night's recipe run report (the summary's per-step outcomes)."""
    out = []
    for r in summary_stdout_json["runs"]:
        for k in ("dl1", "dl2", "stereo_dl1", "stereo_dl2"):
            v = r[k]
            if v and v["outcome"] == "ran":
                out.append(v["step"])
    out += [d["step"] for d in summary_stdout_json["dl3"] if d["outcome"] == "ran"]
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """sst1mpipe's data configuration with the production's event selection and global cut
    (an analysis must use its production's: dl2-dl3's contract refuses anything else)."""
    data = json.loads((ROOT / "config" / "sst1mpipe_data_config.json").read_text())
    mc = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    data["event_selection"] = mc["event_selection"]
    data["analysis"]["global_gammaness_cut"] = mc["analysis"]["global_gammaness_cut"]
    path = tmp_path_factory.mktemp("config") / "nightly_config.json"
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.fixture(scope="module")
def night(tmp_path_factory, stereo_quickstart_store, config):
    if not ARRAY.exists():
        pytest.skip(f"{ARRAY} not found (the shared data folder is absent)")
    raw = tmp_path_factory.mktemp("nightly") / "raw"
    # Seeds of their own: the nights' calibration tables are not those of other tests in the store.
    r = subprocess.run([BIN, "-q", "simulate-night", str(raw), "--date", DATE, "--run-duration", "20", "--seed", "2201",
                        "--runs-per-wobble", "2", "--flux-scale", "30", "--targets", "Crab"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    held = raw / "held-back"
    held.mkdir()
    for f in raw.glob(f"cs*/data/raw/*/*/*/SST1M*/SST1M*_20261205_{HELD_BACK:04d}.fits.fz"):
        shutil.move(str(f), held / f.name)
    store = stereo_quickstart_store
    code, summary, elapsed, err = nightly(store, raw, config)
    print(f"first nightly: {elapsed:.1f} s, {summary['activities']}")
    return raw, store, config, code, summary


def test_first_nightly_analyses_every_science_run_and_skips_the_rest(night):
    raw, store, config, code, s = night
    assert code == 0, json.dumps(s, indent=1)
    status = {(r["cs"], r["run"]): (r["target"], r["status"]) for r in s["runs"]}
    science = [k for k, v in status.items() if v[0] == "Crab"]
    assert len(science) == 6 and all(status[k][1] == "analysed" for k in science), status  # 3 runs x 2 telescopes
    for k, (target, st) in status.items():
        if target in ("DARK", "Transition"):
            assert st == "skipped", status
    assert {"DARK", "Transition"} <= {v[0] for v in status.values()}
    assert s["activities"]["failed"] == 0 and s["activities"]["skipped"] == 0
    # 3 runs: 6 DL1, 6 mono DL2, 3 stereo DL1, 6 stereo DL2 per telescope + 3 combined; DL3 for
    # W1 and W2 in cs1, cs2, stereo with two cuts; 6 indexes; the distributions of W1 and W2
    # for cs1, cs2 and both telescopes' stereo DL1.
    assert s["activities"]["total"] == 6 + 6 + 3 + 6 + 3 + 12 + 6 + 8, s["activities"]
    for r in s["runs"]:
        if r["status"] == "analysed":
            assert r["node"] and 20 < r["zenith_deg"] < 45, r
            assert r["nsb_level_pe"] is not None and r["nsb_level_pe"] > 0
            assert 100 < r["rate_hz"] < 1000
    # The daily tree, as sst1mpipe lays it out, with logs and the config.
    day = pathlib.Path(s["daily_dir"])
    assert (day / "config.json").read_text() == config.read_text()
    for setup in ("cs1", "cs2", "stereo"):
        for sub in ("dl1", "dl2", "dl3", "dl3_eff"):
            files = list((day / "Crab" / setup / sub).iterdir())
            assert any(f.suffix in (".h5", ".fits") for f in files), (setup, sub, files)
            assert any(f.suffix == ".log" for f in files), (setup, sub, files)
    log = next((day / "Crab" / "cs1" / "dl1").glob("*.log")).read_text()
    assert "NSB level" in log
    # sst1mpipe's distributions, read as its scripts read them (astropy).
    from astropy.io.misc.hdf5 import read_table_hdf5
    for setup, tel in (("cs1", "tel1"), ("cs2", "tel2"), ("stereo", "tel1"), ("stereo", "tel2")):
        for sub in ("distributions", "distributions_eff"):
            path = day / "Crab" / setup / sub / f"intensity_hist_{tel}_Crab_W2.h5"
            hist = read_table_hdf5(str(path), path="intensity_hist")
            assert list(hist.colnames) == ["low", "high", "center", "rate", "diff_rate"] and len(hist) == 99
            hours = read_table_hdf5(str(path), path="t_elapsed")["t_elapsed"][0]
            assert 30 / 3600 < hours < 50 / 3600, hours  # two 20 s runs 5 s apart
            assert 25 < read_table_hdf5(str(path), path="zenith")["zenith"][0] < 45
            if setup != "stereo":
                assert read_table_hdf5(str(path), path="NSB")["NSB"][0] > 0
                assert 0 <= read_table_hdf5(str(path), path="survived_pedestal_frac")["survived_pedestal_frac"][0] <= 100
            # Rates times time give the events that have an intensity in the histogram range.
            assert 1000 < (hist["rate"] * hours * 3600).sum() < 20000


def gammapy_significance(datastore, ra, dec, obs_ids=None):
    """gammapy's reflected-regions significance of (ra, dec), stacked over the data store's
    observations (those of `obs_ids` when given): (sqrt TS, ON counts, OFF counts, observations)."""
    from astropy.coordinates import SkyCoord, Angle
    import astropy.units as u
    from gammapy.data import DataStore
    from gammapy.datasets import Datasets, SpectrumDataset
    from gammapy.makers import ReflectedRegionsBackgroundMaker, SpectrumDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, RegionGeom
    from regions import CircleSkyRegion

    ds = DataStore.from_dir(datastore)
    obs = ds.get_observations(obs_ids, required_irf=["aeff", "edisp"])
    target = SkyCoord(ra, dec, unit="deg", frame="icrs")
    region = CircleSkyRegion(center=target, radius=Angle("0.2 deg"))
    e_reco = MapAxis.from_energy_bounds(0.3, 100, 10, unit="TeV", name="energy")
    e_true = MapAxis.from_energy_bounds(0.1, 300, 20, unit="TeV", name="energy_true")
    empty = SpectrumDataset.create(geom=RegionGeom.create(region=region, axes=[e_reco]), energy_axis_true=e_true)
    maker = SpectrumDatasetMaker(selection=["counts", "exposure", "edisp"])
    bkg = ReflectedRegionsBackgroundMaker()
    sets = Datasets()
    for o in obs:
        d = maker.run(empty.copy(name=str(o.obs_id)), o)
        sets.append(bkg.run(d, o))
    info = sets.stack_reduce().info_dict()
    return float(info["sqrt_ts"]), int(info["counts"]), float(info["counts_off"]), len(obs)


def test_gammapy_detects_the_crab_in_cs1_cs2_and_stereo(night):
    raw, store, config, code, s = night
    day = pathlib.Path(s["daily_dir"])
    for setup in ("cs1", "cs2", "stereo"):
        sig, n_on, n_off, n_obs = gammapy_significance(day / "datastore" / setup, 83.6333, 22.0145)
        print(f"{setup}: {n_obs} observations, ON {n_on}, OFF {n_off}, {sig:.1f} sigma (gammapy)")
        assert n_obs == 2 and sig > 5, (setup, sig, n_on, n_off)
        ours = next(t for t in s["targets"] if t["target"] == "Crab" and t["setup"] == setup)
        assert ours["significance"] > 5, ours


def test_same_night_again_is_a_noop_and_a_late_run_redoes_only_its_chain(night):
    raw, store, config, _, _ = night
    code, s, elapsed, _ = nightly(store, raw, config)
    assert code == 0 and s["activities"]["ran"] == 0 and s["activities"]["reused"] == s["activities"]["total"]
    print(f"second nightly (nothing to do): {elapsed:.2f} s wall, {s['elapsed_s']:.2f} s in the engine")
    # The held-back run arrives; two nightly processes start at once.
    for f in (raw / "held-back").iterdir():
        tel = f.name[5]
        dest = next(raw.glob(f"cs{tel}/data/raw/*/*/*/SST1M{tel}"))
        shutil.move(str(f), dest / f.name)
    cmd = [BIN, "--store", str(store), "--json", "nightly", "--raw", str(raw), "--date", DATE,
           "--production", "quickstart-stereo", "--config", str(config), "--subarray", str(ARRAY)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    reports = [json.loads(o[0]) for o in outs]
    ran = sum(r["activities"]["ran"] for r in reports)
    # Its chain: 2 DL1, 2 mono DL2, 1 stereo DL1, 2 stereo DL2 + 1 combined; the DL3 of Crab W1
    # in 3 setups x 2 cuts, its 4 distributions; the 6 indexes. Computed once between the two
    # processes.
    assert ran == 8 + 6 + 4 + 6, [r["activities"] for r in reports]
    steps = set(ran_steps(reports[0], store)) | set(ran_steps(reports[1], store))
    assert all(f"{HELD_BACK:04d}" in st or "W1" in st for st in steps), steps
    assert not any("W2" in st for st in steps), steps


def test_an_invalidated_calibration_table_stops_its_runs_and_a_replaced_one_redoes_exactly_them(night):
    raw, store, config, _, _ = night
    table = next(raw.glob("cs2/data/calibration/SST1M2_calib_param_*.h5"))
    r = subprocess.run([BIN, "--store", str(store), "invalidate", str(table), "--reason", "wrong gains (test)"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    code, s, _, _ = nightly(store, raw, config)
    assert code == 1
    for run in s["runs"]:
        if run["target"] == "Crab":
            if run["cs"] == "cs2":
                assert run["status"] == "not analysed" and "invalidated" in run["reason"], run
            else:
                assert run["status"] == "analysed" and run["dl1"]["outcome"] == "reused", run
    # The table replaced (gains 1% higher): exactly the cs2 runs and what depends on them rerun.
    df = pd.read_hdf(table)
    df["dc_to_pe"] = df["dc_to_pe"] * 1.01
    table.chmod(0o644)
    table.unlink()
    df.to_hdf(table, key="param", format="fixed")
    code, s, _, _ = nightly(store, raw, config)
    assert code == 0, json.dumps(s["failed_activities"])
    steps = ran_steps(s, store)
    assert steps and not any(st.startswith(("dl1-cs1", "dl2-cs1", "dl3-cs1", "dl3eff-cs1")) for st in steps), steps
    assert sum(st.startswith("dl1-cs2") for st in steps) == 4, steps


def test_bad_input_is_named_and_the_rest_of_the_night_is_processed(night, tmp_path):
    _, store, config, _, _ = night
    raw = tmp_path / "raw"
    date = "2026-12-06"
    r = subprocess.run([BIN, "-q", "simulate-night", str(raw), "--date", date, "--run-duration", "5", "--seed", "2202",
                        "--runs-per-wobble", "2", "--flux-scale", "30"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cs1 = next(raw.glob("cs1/data/raw/*/*/*/SST1M1"))
    cs2 = next(raw.glob("cs2/data/raw/*/*/*/SST1M2"))
    truncated = cs1 / "SST1M1_20261206_0002.fits.fz"
    with open(truncated, "r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    not_zfits = cs1 / "SST1M1_20261206_0099.fits.fz"
    not_zfits.write_bytes(b"not a FITS file " * 360)  # 5760 bytes: two FITS blocks of text
    # Run 3 of cs1 renamed on the sky: a target nobody knows the position of.
    renamed = cs1 / "SST1M1_20261206_0003.fits.fz"
    data = renamed.read_bytes()
    at = data.index(b"TARGET  = 'Crab,")
    data = data[:at] + b"TARGET  = 'Xyzq," + data[at + 16:]
    renamed.write_bytes(data)
    (raw / "cs2" / "data" / "calibration").joinpath("SST1M2_calib_param_20261206.h5").unlink()
    code, s, _, _ = nightly(store, raw, config, date=date)
    assert code == 1
    unreadable = {pathlib.Path(u["file"]).name: u["error"] for u in s["unreadable_files"]}
    assert "truncated" in unreadable[truncated.name], unreadable
    assert "not a FITS file" in unreadable[not_zfits.name], unreadable
    runs = {(r["cs"], r["run"]): r for r in s["runs"]}
    assert runs[("cs1", 3)]["target"] == "Xyzq" and runs[("cs1", 3)]["status"] == "analysed"
    assert any("Xyzq" in n and "no known position" in n for n in s["notes"]), s["notes"]
    for (cs, run), r in runs.items():
        if cs == "cs2" and r["target"] not in ("DARK", "Transition"):
            assert r["status"] == "not analysed" and "no calibration table" in r["reason"], r
        if cs == "cs1" and r["target"] == "Mrk421":
            assert r["status"] == "not analysed" and "no production node within 10" in r["reason"], r
    # The Crab W2 run of cs1 went all the way to DL3.
    assert runs[("cs1", 5)]["dl2"]["outcome"] == "ran"
    assert any(d["setup"] == "cs1" and d["target"] == "Crab" and d["outcome"] == "ran" for d in s["dl3"]), s["dl3"]
    html = (pathlib.Path(s["daily_dir"]) / "summary.html").read_text()
    for needle in (truncated.name, not_zfits.name, "no calibration table", "no production node within", "Xyzq"):
        assert needle in html, needle
    # An empty night: nothing to do, not an error.
    code, s, _, _ = nightly(store, raw, config, date="2026-12-07")
    assert code == 0 and s["runs"] == [] and s["activities"]["total"] == 0


def test_summary_page_in_headless_chromium(night, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (scripts/setup.sh installs it)")
    _, _, _, _, first = night
    # The page as the last nightly of the date left it, with its JSON.
    page = pathlib.Path(first["daily_dir"]) / "summary.html"
    s = json.loads((page.parent / "summary.json").read_text())
    shot = tmp_path / "summary.png"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    r = subprocess.run(base + ["--window-size=1400,2200", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, r.stderr
    from PIL import Image
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 2000 and (img.std(axis=(0, 1)) > 10).all()  # not a blank page
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "SST-1M night 20261205" in dom
    assert dom.count("<svg") >= len(s["targets"]) >= 1  # a θ² plot per target and setup
    for t in s["targets"]:
        assert f"{t['significance']:.1f}σ" in dom, t
    for r in s["runs"]:
        if r["status"] == "analysed":
            assert f"<td>{r['run']}</td>" in dom


def test_a_night_on_slurm(night, tmp_path):
    """`nightly --executor slurm`: every activity of a new night runs as a SLURM job, recorded
    with its job, and the night reaches DL3 as on local cores."""
    from test_slurm import slurm_up
    why = slurm_up()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests, but {why}")
        pytest.skip(why)
    _, store, config, _, _ = night
    raw = tmp_path / "raw"
    date = "2026-12-08"
    r = subprocess.run([BIN, "-q", "simulate-night", str(raw), "--date", date, "--run-duration", "5", "--seed", "2203",
                        "--runs-per-wobble", "1", "--flux-scale", "30", "--targets", "Crab"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    settings = tmp_path / "slurm.json"
    settings.write_text(json.dumps({"job_name": "s1mf-nightly", "stages": {"dl1-distributions": {"activities_per_task": 4}}}))
    code, s, elapsed, err = nightly(store, raw, config, "--executor", "slurm", "--slurm-config", str(settings), date=date)
    print(f"nightly on SLURM: {elapsed:.1f} s, {s['activities']}")
    assert code == 0, err
    assert s["activities"]["failed"] == 0 and s["activities"]["ran"] > 20, s["activities"]
    assert all(r["status"] == "analysed" for r in s["runs"] if r["target"] == "Crab")
    recipe = store / "nightly" / "nightly-20261208.json"
    status = json.loads(subprocess.run([BIN, "--store", str(store), "--json", "status", str(recipe)],
                                       capture_output=True, text=True, check=True).stdout)[0]
    assert status["not_up_to_date"] == []
    jobs = status["slurm_jobs"]
    assert len(jobs) == s["activities"]["ran"], (len(jobs), s["activities"])
    assert all(j["job"]["state"] == "COMPLETED" for j in jobs), jobs
    # The runs' r0-dl1 activities, ready together, went out as job arrays (not a job each).
    dl1 = [j["job"]["job_id"].split("_")[0] for j in jobs if j["step"].startswith("dl1-")]
    assert len(set(dl1)) < len(dl1), dl1
