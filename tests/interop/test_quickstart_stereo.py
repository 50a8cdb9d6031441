"""The stereo quickstart (issue 19), end to end on the release build: the quickstart's showers
seen by both telescopes, matched, reconstructed as sst1mpipe does in stereo, through stereo
gammaness cuts, IRFs and performance to stereo DL3; telescope 1's mono performance on the same
showers beside it. Required: gammapy detects the simulated source and recovers its spectrum
within 3 sigma from the stereo DL3 and IRFs (the shipped analysis script); the stereo energy
and angular resolutions beat mono's by a factor like the SST-1M Crab paper's (A&A 699, A255:
mono about 20 % and 0.18 deg, stereo about 10 % and 0.10 deg) where both have events; headers
and tables say stereo; pandas reads stereo DL2."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tables

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", str(ROOT / "target" / "release" / "sst1mflow"))
RECIPE = ROOT / "recipes" / "quickstart-stereo.json"


@pytest.fixture(scope="module")
def views(stereo_quickstart_store):
    """The stereo quickstart's views (run once per session, in conftest.py: the nightly tests
    use the same store as their production)."""
    return stereo_quickstart_store / "views" / "quickstart-stereo"


def test_gammapy_detects_the_source_in_stereo_dl3_and_recovers_its_spectrum(views, tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "quickstart_analysis.py"),
                          str(views / "datastore" / "all"), str(RECIPE), "--png", str(tmp_path / "a.png"), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    print(json.dumps({k: report[k] for k in ("n_on", "n_off", "alpha", "significance", "index", "index_err",
                                             "amplitude_1tev", "amplitude_err", "fit_range_tev")}))
    assert all(report["checks"].values()), report
    assert report["significance"] > 5


def test_stereo_resolutions_beat_mono_on_the_same_showers(views):
    def table(step):
        path = views / step / "all" / "performance.h5"
        with tables.open_file(str(path)) as f:
            setup = f.root._v_attrs.telescope_setup
        return setup, pd.read_hdf(path, "energy_resolution"), pd.read_hdf(path, "angular_resolution")

    (s_setup, s_e, s_a), (m_setup, m_e, m_a) = table("performance"), table("performance-mono")
    assert (s_setup, m_setup) == ("stereo", "tel_001")
    side = pd.DataFrame({"E_TeV": s_e.center, "n_mono": m_e.n_events, "n_stereo": s_e.n_events,
                         "dE/E mono": m_e.resolution, "dE/E stereo": s_e.resolution,
                         "ang mono": m_a.resolution, "ang stereo": s_a.resolution})
    print(side.round(3).to_string())
    both = (side.n_mono >= 50) & (side.n_stereo >= 50) & (side.E_TeV >= 1) & (side.E_TeV <= 10)
    assert both.sum() >= 4, side
    energy_gain = np.median(side["dE/E mono"][both] / side["dE/E stereo"][both])
    angular_gain = np.median(side["ang mono"][both] / side["ang stereo"][both])
    print(f"stereo over mono, 1-10 TeV: energy resolution x{energy_gain:.2f}, angular x{angular_gain:.2f}")
    assert energy_gain > 1.3 and angular_gain > 1.4
    assert np.median(side["dE/E stereo"][both]) < 0.15 and np.median(side["ang stereo"][both]) < 0.12


def test_stereo_headers_irfs_and_dl2(views):
    from astropy.io import fits
    from gammapy.data import DataStore

    irf = fits.open(views / "irfs" / "all" / "irfs.fits")
    assert irf[0].header["TELESCOP"] == "SST1M_stereo" and irf["EFFECTIVE AREA"].header["N_TELS"] == 2
    assert json.loads(irf["EFFECTIVE AREA"].header["STEREOCT"]) == {
        "stereo_delta_disp_cut_deg": None, "stereo_relative_std_reco_energy_cut": None, "stereo_std_gammaness_cut": None}
    ds = DataStore.from_dir(views / "datastore" / "all")
    assert list(ds.obs_table["OBS_ID"]) == [1001, 1002, 1003, 1004]
    assert {t.strip() for t in ds.obs_table["TELESCOP"]} == {"SST1M_stereo"} and set(ds.obs_table["N_TELS"]) == {2}
    for obs_id in ds.obs_table["OBS_ID"]:
        obs = ds.obs(obs_id)
        assert len(obs.events.table) > 5 and obs.aeff.data.max() > 1e4  # m2
        assert obs.events.table.meta["TELLIST"] == "1-2"
    dl2 = pd.read_hdf(views / "dl2-obs-1001" / "all" / "dl2_stereo.h5", "/dl2/event/telescope/parameters/stereo")
    assert {"reco_energy", "gammaness", "var_reco_energy", "min_distance", "camera_frame_hillas_intensity_tel1",
            "camera_frame_hillas_intensity_tel2", "reco_ra", "reco_dec", "local_time"} <= set(dl2.columns)
    assert len(dl2) > 1000 and dl2["reco_ra"].notna().mean() > 0.99


def test_a_mono_irf_is_refused_for_stereo_dl2_and_the_reverse(views, tmp_path):
    """dl2-dl3's contract on the stereo quickstart's products (reused from its store): a mono
    IRF of telescope 1 for a stereo run, and the stereo IRF for that run's mono DL2, are refused
    with the differing items side by side; nothing is published for them."""
    store = views.parent.parent
    recipe = json.loads(RECIPE.read_text())
    recipe["name"] = "contract"
    recipe["config"] = str((RECIPE.parent / recipe["config"]).resolve())
    models = {k: f"train-rfs-mono.{k}" for k in ("energy", "disp_norm", "disp_sign", "gh")}
    recipe["steps"] += [
        {"name": "dl3-mono-irf", "stage": "dl2-dl3",
         "inputs": {"dl2": "dl2-obs-1001.dl2", "irfs": "irfs-mono.irfs", "cuts": "gh-cuts-mono.cuts"}},
        {"name": "dl2-mono-obs-1001", "stage": "dl1-dl2", "inputs": {"dl1": "dl1-obs-1001-tel1.dl1", **models}},
        {"name": "dl3-stereo-irf", "stage": "dl2-dl3",
         "inputs": {"dl2": "dl2-mono-obs-1001.dl2", "irfs": "irfs.irfs", "cuts": "gh-cuts.cuts"}},
    ]
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(recipe))
    run = subprocess.run([BIN, "--store", str(store), "-q", "run", str(path)], capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    for step in ("dl3-mono-irf", "dl3-stereo-irf"):
        assert f"FAILED {step}/all: the IRF does not belong to these events" in out, out
    setup_rows = {" ".join(line.split()[2:]) for line in out.splitlines() if line.startswith("  telescope setup")}
    assert setup_rows == {'"mono" "stereo"', '"stereo" "mono"'}, out
    views_contract = store / "views" / "contract"
    assert not (views_contract / "dl3-mono-irf").exists() and not (views_contract / "dl3-stereo-irf").exists()
    assert (views_contract / "irfs-mono" / "all" / "irfs.fits").exists()
