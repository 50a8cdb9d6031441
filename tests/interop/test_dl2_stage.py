"""Random forests trained and applied by the engine (simulate → r0-dl1 → train-rfs → dl1-dl2 →
make-irfs), checked with pandas, scikit-learn's metrics, ctapipe's coordinate frames, astropy and
gammapy: the chain learns, the DL2 directions are what ctapipe and astropy compute, and gammapy
loads the IRFs with sane values."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The fixture simulates and trains on 54,000 showers: the release build when there is one.
BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow")))
KEY = "/dl2/event/telescope/parameters/tel_001"
MODELS = {"energy": "train.energy", "disp_norm": "train.disp_norm", "disp_sign": "train.disp_sign", "gh": "train.gh"}


def sim(name, particle, n, seed, **extra):
    params = {"particle": particle, "n_events": n, "seed": seed, "energy_min_tev": 0.5 if particle == "gamma" else 1.0,
              "energy_max_tev": 200 if particle == "gamma" else 400,
              "max_impact_m": 400 if particle == "gamma" else 500, **extra}
    return {"name": name, "stage": "simulate", "params": params}


@pytest.fixture(scope="module")
def dl2(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dl2stage")
    (tmp / "mc.json").write_text((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    steps = [
        sim("sim-g", "gamma", 12000, 31, viewcone_deg=3.0),
        sim("sim-p", "proton", 24000, 32, viewcone_deg=4.0),
        sim("sim-gt", "gamma", 6000, 33, viewcone_deg=3.0),
        sim("sim-pt", "proton", 12000, 34, viewcone_deg=4.0),
    ]
    for s in ["g", "p", "gt", "pt"]:
        steps.append({"name": f"dl1-{s}", "stage": "r0-dl1", "inputs": {"r1": f"sim-{s}.r1"}})
    steps.append({"name": "train", "stage": "train-rfs", "inputs": {"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}})
    for s in ["gt", "pt"]:
        steps.append({"name": f"dl2-{s}", "stage": "dl1-dl2", "inputs": {"dl1": f"dl1-{s}.dl1", **MODELS}})
    steps.append({"name": "irfs", "stage": "make-irfs", "inputs": {"gamma": "dl2-gt.dl2", "proton": "dl2-pt.dl2"}})
    steps.append({"name": "cuts", "stage": "gh-cuts", "inputs": {"gamma": "dl2-gt.dl2"}})
    steps.append({"name": "irfs-edep", "stage": "make-irfs",
                  "inputs": {"gamma": "dl2-gt.dl2", "proton": "dl2-pt.dl2", "cuts": "cuts.cuts"}})
    # A second part of the test production (other seeds), as productions arrive in many files:
    # IRFs of both parts together, and of the second part alone.
    steps += [sim("sim-gt2", "gamma", 6000, 35, viewcone_deg=3.0), sim("sim-pt2", "proton", 12000, 36, viewcone_deg=4.0)]
    for s in ["gt2", "pt2"]:
        steps.append({"name": f"dl1-{s}", "stage": "r0-dl1", "inputs": {"r1": f"sim-{s}.r1"}})
        steps.append({"name": f"dl2-{s}", "stage": "dl1-dl2", "inputs": {"dl1": f"dl1-{s}.dl1", **MODELS}})
    steps.append({"name": "irfs-2", "stage": "make-irfs", "inputs": {"gamma": "dl2-gt2.dl2", "proton": "dl2-pt2.dl2"}})
    steps.append({"name": "irfs-both", "stage": "make-irfs",
                  "inputs": {"gamma": ["dl2-gt.dl2", "dl2-gt2.dl2"], "proton": ["dl2-pt.dl2", "dl2-pt2.dl2"]}})
    steps.append({"name": "cuts-both", "stage": "gh-cuts", "inputs": {"gamma": ["dl2-gt.dl2", "dl2-gt2.dl2"]}})
    # sst1mpipe's event classes: misdirection trained on the second part, edges on the first,
    # both particles of the first part classified, and one IRF per class.
    steps.append({"name": "mis", "stage": "train-misdirection", "inputs": {"gamma": "dl2-gt2.dl2"}})
    steps.append({"name": "edges", "stage": "event-classes", "inputs": {"dl2": "dl2-gt.dl2", "model": "mis.model"}})
    for s in ["gt", "pt"]:
        steps.append({"name": f"class-{s}", "stage": "event-classes",
                      "inputs": {"dl2": f"dl2-{s}.dl2", "model": "mis.model", "edges": "edges.edges"}})
    for c in range(1, 5):
        steps.append({"name": f"irfs-ec{c}", "stage": "make-irfs", "params": {"event_class": c},
                      "inputs": {"gamma": "class-gt.dl2", "proton": "class-pt.dl2"}})
    (tmp / "r.json").write_text(json.dumps({"name": "mc", "config": "mc.json", "steps": steps}))
    store = tmp / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", "-j", "2", str(tmp / "r.json")], check=True,
                   capture_output=True)
    views = store / "views" / "mc"
    g = pd.read_hdf(views / "dl2-gt" / "all" / "dl2.h5", key=KEY)
    p = pd.read_hdf(views / "dl2-pt" / "all" / "dl2.h5", key=KEY)
    return views, g, p


def test_dl2_columns_are_sst1mpipes(dl2):
    _, g, _ = dl2
    for col in ["log_reco_energy", "reco_energy", "reco_disp_norm", "reco_disp_sign", "reco_disp_dx", "reco_disp_dy",
                "gammaness", "reco_src_x", "reco_src_y", "reco_alt", "reco_az", "reco_ra", "reco_dec",
                "camera_frame_hillas_intensity", "true_energy", "true_alt", "true_az", "true_alt_tel", "true_az_tel"]:
        assert col in g.columns, col
    ok = g["gammaness"].notna()
    assert ok.mean() > 0.5
    q = g[ok]
    assert q["gammaness"].between(0, 1).all()
    assert np.allclose(q["reco_energy"], 10 ** q["log_reco_energy"])
    assert set(np.unique(q["reco_disp_sign"])) <= {-1.0, 1.0}
    assert np.allclose(q["reco_src_x"], q["camera_frame_hillas_x"] + q["reco_disp_dx"])


def test_the_chain_learns_above_1_tev(dl2):
    from sklearn.metrics import roc_auc_score
    _, g, p = dl2
    g = g[g["gammaness"].notna() & (g["true_energy"] > 1)]
    p = p[p["gammaness"].notna() & (p["true_energy"] > 1)]
    auc = roc_auc_score(np.r_[np.ones(len(g)), np.zeros(len(p))], np.r_[g["gammaness"], p["gammaness"]])
    print(f"AUC above 1 TeV: {auc:.3f} ({len(g)} gammas, {len(p)} protons)")
    assert 0.85 < auc < 0.995, "gamma/hadron separation is learnt, and not trivially"
    rel = (g["reco_energy"] - g["true_energy"]) / g["true_energy"]
    q16, q50, q84 = np.percentile(rel, [16, 50, 84])
    print(f"energy above 1 TeV: bias {q50:+.3f}, resolution {(q84 - q16) / 2:.3f}")
    assert (q84 - q16) / 2 < 0.30 and abs(q50) < 0.1
    # Direction: the sign is mostly right and the 68% containment is a fraction of a degree.
    theta = np.degrees(np.hypot(g["reco_src_x"] - g["true_camera_x"], g["reco_src_y"] - g["true_camera_y"]) / 5.6)
    assert np.percentile(theta, 68) < 0.35


def test_directions_match_ctapipe_and_astropy(dl2):
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    from ctapipe.coordinates import CameraFrame
    iers.conf.auto_download = False
    _, g, _ = dl2
    q = g[g["reco_alt"].notna()].head(300)
    pointing = SkyCoord(alt=q["true_alt_tel"].to_numpy() * u.deg, az=q["true_az_tel"].to_numpy() * u.deg,
                        frame=AltAz())
    cam = SkyCoord(x=q["reco_src_x"].to_numpy() * u.m, y=q["reco_src_y"].to_numpy() * u.m,
                   frame=CameraFrame(focal_length=5.6 * u.m, telescope_pointing=pointing))
    altaz = cam.transform_to(AltAz())
    assert np.allclose(altaz.alt.deg, q["reco_alt"], atol=1e-6)
    d_az = (altaz.az.deg - q["reco_az"] + 180) % 360 - 180
    assert np.allclose(d_az, 0, atol=1e-6)
    # RA/Dec at sst1mpipe's fixed MC time and the telescope's site (MC config tel_001).
    site = EarthLocation(lon=14.782924 * u.deg, lat=49.9118 * u.deg, height=510 * u.m)
    frame = AltAz(obstime=Time("2022-11-01T02:00:00", scale="utc"), location=site)
    icrs = SkyCoord(alt=q["reco_alt"].to_numpy() * u.deg, az=q["reco_az"].to_numpy() * u.deg, frame=frame).icrs
    ours = SkyCoord(ra=q["reco_ra"].to_numpy() * u.deg, dec=q["reco_dec"].to_numpy() * u.deg, frame="icrs")
    sep = icrs.separation(ours).arcsec
    print(f"RA/Dec vs astropy: max {sep.max():.1f} arcsec")
    assert sep.max() < 60


def test_dl2_records_the_models_it_used(dl2):
    import h5py
    views, _, _ = dl2
    with h5py.File(views / "dl2-gt" / "all" / "dl2.h5") as f:
        models = json.loads(f.attrs["sst1mflow_models"])
        assert set(models) == {"energy", "disp_norm", "disp_sign", "gh"}
        assert len({m["training_activity"] for m in models.values()}) == 1
        assert "sst1mflow_contract_override" not in f.attrs
        assert len(f.attrs["sst1mflow_activity_key"]) == 64
    for role, name in [("energy", "reg_energy_tel_001.rf"), ("gh", "class_gh_tel_001.rf")]:
        path = (views / "train" / "all" / name).resolve()
        assert models[role]["sha256"] == path.name


def test_sst1mpipes_readers_find_what_they_read_in_our_mc_dl2(dl2, tmp_path):
    """What sst1mpipe reads from a Monte Carlo DL2 beyond the events, read with ctapipe 0.17's
    read_table (its pinned version): get_mc_info's run configuration and thrown-shower
    histogram (its shower-reuse check holds, so it applies no correction), and /dl2/info (the
    version and the models, which its DL3 scripts name IRFs and cuts by)."""
    py017 = ROOT / ".venv-ctapipe017" / "bin" / "python"
    if not py017.exists():
        pytest.skip(f"{py017} not found (scripts/setup.sh --python makes it)")
    views, _, _ = dl2
    path = views / "dl2-gt" / "all" / "dl2.h5"

    def read_table(table):
        out = tmp_path / "table.json"
        r = subprocess.run([str(py017), str(ROOT / "tests" / "interop" / "ctapipe017_reference.py"), "table",
                            str(path), table, str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return json.loads(out.read_text())["rows"]

    run = read_table("/configuration/simulation/run")
    hist = read_table("/simulation/service/shower_distribution")
    assert len(run) == len(hist) == 1
    assert (run[0]["n_showers"], run[0]["shower_reuse"]) == (6000, 1)
    assert hist[0]["n_entries"] == run[0]["n_showers"] * run[0]["shower_reuse"] == np.sum(hist[0]["histogram"])
    assert (run[0]["min_scatter_range"], run[0]["max_scatter_range"], run[0]["max_viewcone_radius"]) == (0.0, 400.0, 3.0)
    info = read_table("/dl2/info")
    import h5py
    with h5py.File(path) as f:
        models = json.loads(f.attrs["sst1mflow_models"])
        version = f.attrs["sst1mflow_pipeline_version"]
    # sst1mpipe's column holds 68 characters (a dirty build's version is longer; the root
    # attribute keeps it whole).
    assert info[0]["sst1mpipe_version"] == f"sst1mflow {version}"[:68]
    assert info[0]["RF_used"].split("/")[-1] == models["energy"]["training_activity"]


def test_gammapy_loads_the_irfs_with_sane_values(dl2, tmp_path):
    import astropy.units as u
    from astropy.io import fits
    from gammapy.irf import load_irf_dict_from_file
    views, _, _ = dl2
    path = views / "irfs" / "all" / "irfs.fits"
    irfs = load_irf_dict_from_file(path)
    assert set(irfs) == {"aeff", "edisp", "psf", "bkg"}
    assert type(irfs["aeff"]).__name__ == "EffectiveAreaTable2D"
    assert type(irfs["edisp"]).__name__ == "EnergyDispersion2D"
    assert type(irfs["psf"]).__name__ == "PSF3D"
    assert type(irfs["bkg"]).__name__ == "Background2D"
    aeff = irfs["aeff"].evaluate(energy_true=[2, 5, 20] * u.TeV, offset=0.5 * u.deg).to_value(u.m ** 2)
    assert (aeff > 1e3).all() and (aeff < np.pi * 400 ** 2).all(), aeff
    edisp = irfs["edisp"]
    norm = (edisp.data * np.diff(edisp.axes["migra"].edges)[None, :, None]).sum(axis=1)
    filled = norm > 0
    # Offsets beyond the 3° view cone and the highest energies are empty; the rest is normalised.
    assert filled.sum() > 100 and np.allclose(norm[filled], 1, atol=1e-5)
    psf = irfs["psf"]
    contained = psf.containment(rad=1 * u.deg, energy_true=[2, 5, 20] * u.TeV, offset=0.5 * u.deg)
    assert np.allclose(contained, 1, atol=0.02), contained
    r68 = psf.containment_radius(0.68, energy_true=5 * u.TeV, offset=0.5 * u.deg).to_value(u.deg)
    assert 0.05 < r68 < 0.4, r68
    bkg = irfs["bkg"].evaluate(energy=[2, 5] * u.TeV, offset=1 * u.deg)
    assert (bkg.value > 0).all() and bkg.unit.is_equivalent("1 / (MeV s sr)")
    # Provenance in every header, and lineage finds the maker from a copy anywhere.
    with fits.open(path) as f:
        for hdu in f[1:]:
            assert hdu.header["S1MKEY"] and hdu.header["GH_CUT"] == 0.6 and "camera_frame_hillas_intensity" in hdu.header["EVTSEL"]
            assert json.loads(hdu.header["RFMODELS"])["gh"]["sha256"]
            assert hdu.header["S1MVER"].startswith("0.")
    copy = tmp_path / "SST1M_tel_001_irfs.fits"
    copy.write_bytes(path.read_bytes())
    out = subprocess.run([BIN, "--store", str(views.parent.parent), "--json", "lineage", str(copy)],
                         check=True, capture_output=True, text=True)
    assert "make-irfs" in out.stdout and "train-rfs" in out.stdout


def test_energy_dependent_cuts_are_readable_and_pinned_in_the_irfs(dl2):
    from astropy.io import fits
    views, g, _ = dl2
    table_path = (views / "cuts" / "all" / "gh_cuts.h5").resolve()
    cuts = pd.read_hdf(table_path, key="/gammaness_cuts")
    assert list(cuts.columns) == ["low", "high", "center", "n_events", "cut"]
    assert len(cuts) == 20 and np.allclose(cuts["low"].iloc[0], 0.1) and np.allclose(cuts["high"].iloc[-1], 1000)
    full = cuts[cuts["n_events"] >= 100]
    assert len(full) >= 4 and full["cut"].between(0.1, 0.95).all()
    # Each well-filled bin keeps about 60% of its gammas (the MC config's gamma_efficiency).
    sel = g[g["gammaness"].notna()]
    for _, row in full.iterrows():
        in_bin = sel[(sel["reco_energy"] >= row["low"]) & (sel["reco_energy"] < row["high"])]
        kept = (in_bin["gammaness"] >= row["cut"]).mean()
        assert abs(kept - 0.6) < 0.03 or row["cut"] in (0.1, 0.95), (row.to_dict(), kept)
    with fits.open(views / "irfs-edep" / "all" / "irfs.fits") as f:
        assert f["EFFECTIVE AREA"].header["GH_CUT"] == "energy-dependent"
        assert f["EFFECTIVE AREA"].header["CUTTABLE"] == table_path.name


def test_true_energy_scaling_biases_the_irfs_as_sst1mpipe(dl2, tmp_path):
    """make-irfs with true_energy_scaling (sst1mpipe's --true_energy_scaling): the true energies
    and the simulated range are multiplied by analysis.true_energy_scaling_factor, so the true
    energy axis of the effective area is the unbiased one times the factor and the headers say
    so; without the parameter the factor is read but not applied (no rerun when it changes)."""
    from astropy.io import fits
    views, _, _ = dl2
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    cfg["analysis"]["true_energy_scaling_factor"] = 1.25
    (tmp_path / "mc.json").write_text(json.dumps(cfg))
    inputs = {"g": {"paths": [str((views / "dl2-gt" / "all" / "dl2.h5").resolve())], "kind": "dl2"},
              "p": {"paths": [str((views / "dl2-pt" / "all" / "dl2.h5").resolve())], "kind": "dl2"}}
    steps = [{"name": "plain", "stage": "make-irfs", "inputs": {"gamma": "g", "proton": "p"}},
             {"name": "biased", "stage": "make-irfs", "inputs": {"gamma": "g", "proton": "p"},
              "params": {"true_energy_scaling": True}}]
    (tmp_path / "r.json").write_text(json.dumps({"name": "esc", "config": "mc.json", "inputs": inputs, "steps": steps}))
    store = tmp_path / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", str(tmp_path / "r.json")], check=True, capture_output=True)
    out = store / "views" / "esc"
    with fits.open(out / "plain" / "all" / "irfs.fits") as p, fits.open(out / "biased" / "all" / "irfs.fits") as b:
        plain, biased = p["EFFECTIVE AREA"], b["EFFECTIVE AREA"]
        assert "ETRUESCL" not in plain.header and biased.header["ETRUESCL"] == 1.25
        for col in ["ENERG_LO", "ENERG_HI"]:
            assert np.allclose(biased.data[col], 1.25 * plain.data[col], rtol=1e-6)  # float32 columns
        # The same events in the same (scaled) bins: the same effective areas.
        assert np.allclose(biased.data["EFFAREA"], plain.data["EFFAREA"], rtol=1e-5)
    # The factor is not applied without the parameter: changing it reruns only the biased IRF.
    cfg["analysis"]["true_energy_scaling_factor"] = 1.5
    (tmp_path / "mc.json").write_text(json.dumps(cfg))
    report = json.loads(subprocess.run([BIN, "--store", str(store), "--json", "-q", "run", str(tmp_path / "r.json")],
                                       check=True, capture_output=True, text=True).stdout)
    ran = sorted(a["step"] for a in report["activities"] if a["outcome"] == "ran")
    assert ran == ["biased"], ran


def test_a_true_energy_cut_keeps_the_effective_area_above_it(dl2, tmp_path):
    """analysis.{gamma,proton}_min_simulated_energy_tev as sst1mpipe applies them: dl1-dl2 drops
    the simulated events below the cut and make-irfs rescales the thrown showers to the spectrum
    above it, so the effective area in every true-energy bin above the cut is the uncut one
    (the same events over the same thrown count), while the bins below it are empty."""
    from astropy.io import fits
    views, _, _ = dl2
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    cfg["analysis"]["gamma_min_simulated_energy_tev"] = 2.0
    cfg["analysis"]["proton_min_simulated_energy_tev"] = 4.0
    (tmp_path / "mc.json").write_text(json.dumps(cfg))
    models = {"energy": "reg_energy", "disp_norm": "reg_disp_norm", "disp_sign": "class_disp_sign", "gh": "class_gh"}
    inputs = {role: {"paths": [str((views / "train" / "all" / f"{name}_tel_001.rf").resolve())], "kind": "rf-model"}
              for role, name in models.items()}
    for s in ["gt", "pt"]:
        inputs[s] = {"paths": [str((views / f"dl1-{s}" / "all" / "dl1.h5").resolve())], "kind": "dl1"}
    roles = {role: role for role in models}
    steps = [{"name": "dl2-g", "stage": "dl1-dl2", "inputs": {"dl1": "gt", **roles}},
             {"name": "dl2-p", "stage": "dl1-dl2", "inputs": {"dl1": "pt", **roles}},
             {"name": "irfs", "stage": "make-irfs", "inputs": {"gamma": "dl2-g.dl2", "proton": "dl2-p.dl2"}}]
    (tmp_path / "r.json").write_text(json.dumps({"name": "ecut", "config": "mc.json", "inputs": inputs, "steps": steps}))
    store = tmp_path / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", str(tmp_path / "r.json")], check=True, capture_output=True)
    out = store / "views" / "ecut"
    g = pd.read_hdf(out / "dl2-g" / "all" / "dl2.h5", key=KEY)
    assert g["true_energy"].min() >= 2.0 and (g["min_true_energy_cut"] == 2.0).all()
    with fits.open(out / "irfs" / "all" / "irfs.fits") as c, fits.open(views / "irfs" / "all" / "irfs.fits") as u:
        cut, uncut = c["EFFECTIVE AREA"].data, u["EFFECTIVE AREA"].data
        # The true-energy axis spans the (cut) simulated range, as sst1mpipe's.
        assert np.isclose(cut["ENERG_LO"][0][0], 2.0) and np.isclose(uncut["ENERG_LO"][0][0], 0.5)
        centre = lambda t: np.sqrt(t["ENERG_LO"][0] * t["ENERG_HI"][0])
        ratios = []
        for a_cut, a_uncut in zip(cut["EFFAREA"][0], uncut["EFFAREA"][0]):
            ok = a_uncut > 0
            if ok.sum() < 2:
                continue
            expected = np.interp(np.log(centre(cut)), np.log(centre(uncut)[ok]), a_uncut[ok], left=np.nan, right=np.nan)
            use = (a_cut > 0) & np.isfinite(expected) & (centre(cut) > 2.5) & (centre(cut) < 60)
            ratios.extend(a_cut[use] / expected[use])
        # Without the rescaled thrown count the areas above the cut would be a quarter (the
        # share of an E^-2 spectrum above 2 TeV in 0.5-200 TeV); with it, the same.
        assert len(ratios) >= 10, ratios
        assert 0.85 < np.median(ratios) < 1.15, np.median(ratios)


def test_dl1_written_by_ctapipe017_is_taken_by_dl1_dl2(dl2, tmp_path):
    """DL1 of ctapipe-process 0.17 (sst1mpipe's pin; camera-frame parameters, as sst1mpipe
    configures it) as a dl1-dl2 input: every event read by name, the truth joined from its shower
    table, its origin as its DL1 settings (our models then need override_contract)."""
    py017 = ROOT / ".venv-ctapipe017" / "bin"
    simtel = ROOT.parent / "shared" / "data" / "mc_simtel" / "simtel_test_file.simtel.gz"
    if not (py017 / "ctapipe-process").exists() or not simtel.exists():
        pytest.skip("ctapipe 0.17 (scripts/setup.sh --python) or the shared sim_telarray file is absent")
    dl1 = tmp_path / "ctapipe017.dl1.h5"
    r = subprocess.run([str(py017 / "ctapipe-process"), "--input", str(simtel), "--output", str(dl1),
                        "--write-parameters", "--SimTelEventSource.focal_length_choice=EQUIVALENT",
                        "--ImageProcessor.use_telescope_frame=False"], capture_output=True, text=True,
                       cwd=tmp_path)  # ctapipe writes its provenance log in the working directory
    assert r.returncode == 0, r.stderr
    views, _, _ = dl2
    models = {role: str((views / "train" / "all" / f).resolve()) for role, f in [
        ("energy", "reg_energy_tel_001.rf"), ("disp_norm", "reg_disp_norm_tel_001.rf"),
        ("disp_sign", "class_disp_sign_tel_001.rf"), ("gh", "class_gh_tel_001.rf")]}
    inputs = {"dl1": {"paths": [str(dl1)], "kind": "dl1"}}
    inputs.update({role: {"paths": [p], "kind": "model"} for role, p in models.items()})
    (tmp_path / "mc.json").write_text((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    step = {"name": "dl2", "stage": "dl1-dl2", "inputs": {role: role for role in inputs}}
    store = tmp_path / "store"
    for override in [False, True]:
        step["params"] = {"override_contract": override}
        (tmp_path / "r.json").write_text(json.dumps({"name": "imp", "config": "mc.json", "inputs": inputs,
                                                     "steps": [step]}))
        r = subprocess.run([BIN, "--store", str(store), "-q", "run", str(tmp_path / "r.json")],
                           capture_output=True, text=True)
        if not override:
            assert r.returncode != 0 and "ctapipe 0.17.0" in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    ours = pd.read_hdf(store / "views" / "imp" / "dl2" / "all" / "dl2.h5", key=KEY)
    theirs = pd.read_hdf(dl1, key="/dl1/event/telescope/parameters/tel_001")
    showers = pd.read_hdf(dl1, key="/simulation/event/subarray/shower")
    assert list(ours["event_id"]) == list(theirs["event_id"])
    assert np.allclose(ours["camera_frame_hillas_intensity"], theirs["camera_frame_hillas_intensity"], equal_nan=True)
    merged = ours.merge(showers, on=["obs_id", "event_id"], suffixes=("", "_shower"))
    assert np.allclose(merged["true_energy"], merged["true_energy_shower"])
    assert ours["reco_energy"].notna().sum() >= 5
    import h5py
    with h5py.File(store / "views" / "imp" / "dl2" / "all" / "dl2.h5") as f:
        settings = json.loads(f.attrs["sst1mflow_dl1_settings"])
    assert settings["imported.software"] == "ctapipe 0.17.0" and settings["imported.data_model"] == "v5.0.0"


def test_a_production_in_two_files_gives_the_irfs_of_its_merged_file(dl2):
    """make-irfs on two files of one production sums their thrown showers (sst1mpipe merges
    them first): with equal thrown counts, the effective area and the background rate are the
    means of the two parts' (event counts add, thrown showers add)."""
    from astropy.io import fits
    views, _, _ = dl2
    read = lambda step, ext, col: fits.open(views / step / "all" / "irfs.fits")[ext].data[col][0].astype(float)
    for ext, col in [("EFFECTIVE AREA", "EFFAREA"), ("BACKGROUND", "BKG")]:
        one, two, both = read("irfs", ext, col), read("irfs-2", ext, col), read("irfs-both", ext, col)
        assert one.shape == both.shape
        assert np.any(both > 0)
        np.testing.assert_allclose(both, (one + two) / 2, rtol=2e-6, atol=1e-30, err_msg=f"{ext}")
    cuts = pd.read_hdf(views / "cuts-both" / "all" / "gh_cuts.h5", key="/gammaness_cuts")
    n_one = pd.read_hdf(views / "cuts" / "all" / "gh_cuts.h5", key="/gammaness_cuts")["n_events"].sum()
    assert cuts["n_events"].sum() > 1.5 * n_one


def test_files_of_other_productions_are_refused_naming_both(dl2, tmp_path):
    """A file thrown with another spectral index, or the same run given twice, cannot be summed."""
    views, _, _ = dl2
    store = views.parents[1]
    base = json.loads((views.parents[2] / "r.json").read_text())
    steps = [s for s in base["steps"] if s["name"] in {"sim-g", "sim-p", "dl1-g", "dl1-p", "train", "sim-gt", "dl1-gt",
                                                       "dl2-gt", "sim-pt", "dl1-pt", "dl2-pt"}]
    steps += [sim("sim-gx", "gamma", 2000, 37, viewcone_deg=3.0, spectral_index=-2.5),
              {"name": "dl1-gx", "stage": "r0-dl1", "inputs": {"r1": "sim-gx.r1"}},
              {"name": "dl2-gx", "stage": "dl1-dl2", "inputs": {"dl1": "dl1-gx.dl1", **MODELS}},
              {"name": "irfs-mixed", "stage": "make-irfs",
               "inputs": {"gamma": ["dl2-gt.dl2", "dl2-gx.dl2"], "proton": "dl2-pt.dl2"}},
              {"name": "irfs-twice", "stage": "make-irfs",
               "inputs": {"gamma": ["dl2-gt.dl2", "dl2-gt.dl2"], "proton": "dl2-pt.dl2"}}]
    recipe = tmp_path / "mixed.json"
    (tmp_path / "mc.json").write_text((views.parents[2] / "mc.json").read_text())
    recipe.write_text(json.dumps({"name": "mixed", "config": "mc.json", "steps": steps}))
    r = subprocess.run([BIN, "--store", str(store), "-q", "--json", "run", "-j", "2", str(recipe)],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    failed = {a["step"]: a["detail"] for a in report["activities"] if a["outcome"] == "failed"}
    assert set(failed) == {"irfs-mixed", "irfs-twice"}, failed
    assert "are not of one production (spectral index -2 vs -2.5)" in failed["irfs-mixed"], failed["irfs-mixed"]
    assert failed["irfs-mixed"].startswith("gamma inputs dl2.h5 (") and " and dl2.h5 (" in failed["irfs-mixed"]
    assert "are the same simulation run (seed 33)" in failed["irfs-twice"], failed["irfs-twice"]


def test_event_classes_are_sst1mpipes(dl2):
    """train-misdirection → event-classes → make-irfs per class, against sst1mpipe's own
    formulas re-run here: `get_evttype_edges` (numpy percentiles per reco-energy bin) on our
    predicted misdirection gives our edges table, and `classify_evt_types` with that table gives
    our event_type; the classes rank the true misdirection; the classes' IRFs add up to the IRF of
    all events."""
    from astropy.coordinates import angular_separation
    from astropy.io import fits
    from astropy.table import Table
    views, g, _ = dl2
    edges = Table.read(views / "edges" / "all" / "misdirection_edges.h5", path="misdirection_edges")
    c = pd.read_hdf(views / "class-gt" / "all" / "dl2_classified.h5", key=KEY)
    assert {"log_reco_misdirection", "event_type"} <= set(c.columns)
    # The selected events of the DL2, unchanged, in order.
    assert 0.5 * len(g) < len(c) <= len(g)
    merged = c.merge(g, on=["obs_id", "event_id"], suffixes=("", "_dl2"))
    assert len(merged) == len(c)
    for col in ["reco_energy", "gammaness", "reco_alt", "camera_frame_hillas_intensity"]:
        np.testing.assert_array_equal(merged[col], merged[col + "_dl2"])
    assert (np.diff(c.index) > 0).all() or len(c) < 2
    # sst1mpipe's get_evttype_edges on our predictions.
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())["analysis"]
    ebins = np.logspace(cfg["log_energy_min_tev"], cfg["log_energy_max_tev"], cfg["n_energy_bins"])
    names = [f"log_midirection_edge_{k}" for k in range(5)]
    assert list(edges.colnames) == ["low", "high", "center"] + names
    # numpy's pow may be SIMD (SVML, within an ulp) where ours is libm's: equal to 1e-15.
    np.testing.assert_allclose(edges["low"], ebins[:-1], rtol=1e-15)
    np.testing.assert_allclose(edges["high"], ebins[1:], rtol=1e-15)
    filled = 0
    for i in range(len(ebins) - 1):
        mask = (c["reco_energy"] > edges["low"][i]) & (c["reco_energy"] < edges["high"][i])
        if mask.sum():
            filled += 1
            expected = np.concatenate(([-np.inf], np.percentile(c["log_reco_misdirection"][mask], [25, 50, 75]), [np.inf]))
        else:
            expected = np.full(5, np.nan)
        np.testing.assert_array_equal([edges[n][i] for n in names], expected, err_msg=f"bin {i}")
    assert filled >= 8
    # sst1mpipe's classify_evt_types with that table.
    event_type = np.zeros(len(c), dtype=int)
    for i in range(len(edges)):
        in_bin = (c["reco_energy"] > edges["low"][i]) & (c["reco_energy"] < edges["high"][i])
        for j in range(len(names) - 1):
            in_class = (c["log_reco_misdirection"] > edges[names[j]][i]) & (c["log_reco_misdirection"] <= edges[names[j + 1]][i])
            event_type[(in_bin & in_class).to_numpy()] = j + 1
    np.testing.assert_array_equal(c["event_type"], event_type)
    # The classes rank the true misdirection (astropy's angular_separation, as sst1mpipe).
    true_mis = np.degrees(angular_separation(np.radians(c["true_az"]), np.radians(c["true_alt"]),
                                             np.radians(c["reco_az"]), np.radians(c["reco_alt"])))
    medians = [np.median(true_mis[c["event_type"] == k]) for k in range(1, 5)]
    assert medians == sorted(medians) and medians[3] > 1.5 * medians[0], medians
    # One IRF per class, marked; together they are the IRF of all events (class 0, the events
    # outside the 0.1-1000 TeV bins, keeps no gamma past the cuts here).
    assert not ((c["event_type"] == 0) & (c["gammaness"] > 0.6)).any()
    total = fits.open(views / "irfs" / "all" / "irfs.fits")["EFFECTIVE AREA"].data["EFFAREA"][0].astype(float)
    parts = 0
    for k in range(1, 5):
        with fits.open(views / f"irfs-ec{k}" / "all" / "irfs.fits") as f:
            h = f["EFFECTIVE AREA"].header
            assert h["EVTCLASS"] == k and json.loads(h["EVTCLSID"])["edges"]
            parts = parts + f["EFFECTIVE AREA"].data["EFFAREA"][0].astype(float)
    np.testing.assert_allclose(parts, total, rtol=1e-5, atol=1e-3)
