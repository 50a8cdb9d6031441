"""DL1 made by the engine (simulate → r0-dl1), read with pandas and h5py: columns, truth, disp."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import tables
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))
KEY = "/dl1/event/telescope/parameters/tel_001"


@pytest.fixture(scope="module")
def dl1(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dl1stage")
    (tmp / "mc.json").write_text((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    (tmp / "r.json").write_text(json.dumps({
        "name": "mc", "config": "mc.json",
        "steps": [
            {"name": "sim", "stage": "simulate",
             "params": {"particle": "gamma", "n_events": 300, "seed": 9, "energy_min_tev": 1.5, "max_impact_m": 250,
                        "viewcone_deg": 2.0}},
            {"name": "dl1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1"}},
        ]}))
    store = tmp / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", str(tmp / "r.json")], check=True, capture_output=True)
    return store, store / "views" / "mc" / "dl1" / "all" / "dl1.h5"


def test_parameter_columns_and_truth(dl1):
    _, path = dl1
    p = pd.read_hdf(path, key=KEY)
    showers = pd.read_hdf(path, key="/simulation/event/subarray/shower")
    run = pd.read_hdf(path, key="/configuration/simulation/run")
    assert int(run["n_showers"][0]) == 300 and int(run["shower_reuse"][0]) == 1 and len(showers) == len(p) > 50
    # Every thrown shower in sim_telarray's thrown-shower histogram, as ctapipe lays it out.
    with tables.open_file(str(path)) as f:
        hist = f.root.simulation.service.shower_distribution.read()
    assert hist["n_entries"][0] == 300 and hist["histogram"].shape == (1, 120, 200)
    assert hist["histogram"].sum() == 300 and hist["hist_id"][0] == 6
    for col in ["log_camera_frame_hillas_intensity", "camera_frame_hillas_width", "camera_frame_hillas_length",
                "camera_frame_hillas_wl", "camera_frame_hillas_skewness", "camera_frame_hillas_kurtosis",
                "camera_frame_timing_slope", "leakage_intensity_width_2", "camera_frame_hillas_x",
                "camera_frame_hillas_y", "camera_frame_hillas_intensity", "t_rms", "true_energy", "log_true_energy",
                "true_camera_x", "true_camera_y", "disp_norm", "disp_sign", "disp_angle", "miss",
                "true_tel_impact_distance", "true_shower_primary_id"]:
        assert col in p.columns, col
    ok = p["camera_frame_hillas_intensity"].notna()
    assert ok.sum() > 0.5 * len(p)
    q = p[ok]
    assert np.allclose(q["log_camera_frame_hillas_intensity"], np.log10(q["camera_frame_hillas_intensity"]))
    assert np.allclose(q["camera_frame_hillas_wl"], q["camera_frame_hillas_width"] / q["camera_frame_hillas_length"])
    psi = np.radians(q["camera_frame_hillas_psi"])
    dx, dy = q["true_camera_x"] - q["camera_frame_hillas_x"], q["true_camera_y"] - q["camera_frame_hillas_y"]
    along = dx * np.cos(psi) + dy * np.sin(psi)
    assert np.allclose(q["disp_norm"], np.abs(along)) and np.allclose(q["disp_sign"], np.sign(along))
    assert np.allclose(q["miss"], -dx * np.sin(psi) + dy * np.cos(psi))  # signed, as sst1mpipe's add_miss
    merged = p.merge(showers, on="event_id", suffixes=("", "_shower"))
    assert np.allclose(merged["true_energy"], merged["true_energy_shower"])
    assert (p["true_shower_primary_id"] == 0).all()
    # The disp target is learnable: images lie further from the source at larger impact.
    r = np.corrcoef(q["disp_norm"], q["true_tel_impact_distance"])[0, 1]
    assert r > 0.5, r


def test_embedded_key_is_the_recorded_maker(dl1):
    import h5py

    store, path = dl1
    shown = json.loads(subprocess.run([BIN, "--store", str(store), "--json", "show", str(path)], check=True,
                                      capture_output=True, text=True).stdout)
    with h5py.File(path, "r") as f:
        key = f.attrs["sst1mflow_activity_key"]
        key = key.decode() if isinstance(key, bytes) else key
    assert key == shown["made_by"]["key"]


def test_ctapipe_loads_the_instrument_description(dl1):
    import astropy.units as u
    from ctapipe.instrument import SubarrayDescription

    _, path = dl1
    subarray = SubarrayDescription.from_hdf(path)
    tel = subarray.tel[1]
    assert tel.camera.name == "DigiCam" and tel.camera.geometry.n_pixels == 1296
    assert tel.optics.equivalent_focal_length.to_value(u.m) == 5.6
    assert tel.camera.readout.sampling_rate.to_value(u.GHz) == 0.25 and tel.camera.readout.n_samples == 50
    cam = json.loads(subprocess.run([BIN, "--json", "camera"], check=True, capture_output=True, text=True).stdout)
    assert np.allclose(tel.camera.geometry.pix_x.to_value(u.m), cam["pix_x"])
    neighbours = [sorted(np.nonzero(r)[0].tolist()) for r in tel.camera.geometry.neighbor_matrix]
    assert neighbours == [sorted(n) for n in cam["neighbors"]]
    assert abs(subarray.reference_location.lat.to_value(u.deg) - 49.91244167) < 1e-6


@pytest.mark.parametrize("handler", ["NeighborAverage", None])
def test_bad_pixels_of_simulations_as_sst1mpipe_treats_them(tmp_path, handler):
    """analysis.bad_pixels applies to simulations (sst1mpipe's remove_bad_pixels): the pixels'
    waveforms are zeroed; ctapipe's NeighborAverage then gives each the mean image and peak
    time of its valid neighbours (read with ctapipe's own camera geometry from the file), and a
    null invalid_pixel_handler_type leaves them at zero charge."""
    from ctapipe.instrument import SubarrayDescription
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    # Five pixels near the camera centre, where the showers of a 1° view cone fall.
    camera = json.loads(subprocess.run([BIN, "--json", "camera"], check=True, capture_output=True, text=True).stdout)
    r2 = np.hypot(camera["pix_x"], camera["pix_y"])
    bad = [int(p) for p in np.argsort(r2)[[0, 2, 9, 20, 40]]]
    cfg["analysis"]["bad_pixels"]["tel_001"] = bad
    cfg["CameraCalibrator"]["invalid_pixel_handler_type"] = handler
    (tmp_path / "mc.json").write_text(json.dumps(cfg))
    (tmp_path / "r.json").write_text(json.dumps({
        "name": "bad", "config": "mc.json",
        "steps": [
            {"name": "sim", "stage": "simulate",
             "params": {"particle": "gamma", "n_events": 200, "seed": 9, "energy_min_tev": 3, "max_impact_m": 200,
                        "viewcone_deg": 1.0}},
            {"name": "dl1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1"}},
        ]}))
    store = tmp_path / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", str(tmp_path / "r.json")], check=True, capture_output=True)
    path = store / "views" / "bad" / "dl1" / "all" / "dl1.h5"
    import tables
    with tables.open_file(path) as f:
        images = f.root.dl1.event.telescope.images.tel_001
        image, peak = images.col("image"), images.col("peak_time")
    geometry = SubarrayDescription.from_hdf(path).tel[1].camera.geometry
    neighbors = geometry.neighbor_matrix
    mask = np.zeros(geometry.n_pixels, bool)
    mask[bad] = True
    lit = 0
    for img, pk in zip(image, peak):
        for p in bad:
            valid = neighbors[p] & ~mask
            if handler is None:
                assert img[p] == 0
            else:
                assert valid.any()
                assert np.isclose(img[p], img[valid].mean(), rtol=1e-5, atol=1e-6)
                assert np.isclose(pk[p], pk[valid].mean(), rtol=1e-5, atol=1e-5)
                lit += img[valid].mean() > 5
    assert handler is None or lit > 0, "some shower covers the bad pixels' neighbours"


def test_px_charges_on_our_simulated_r1_are_refused_naming_the_file(dl1, tmp_path):
    """sst1mpipe's --px-charges takes the simulations' noise pixels from the true image, which
    our R1 does not keep: refused, naming the input, with nothing published."""
    store, _ = dl1
    recipe = json.loads((store.parent / "r.json").read_text())
    recipe["steps"][1]["params"] = {"px_charges": True}
    recipe["name"] = "px"
    path = store.parent / "px.json"
    path.write_text(json.dumps(recipe))
    r = subprocess.run([BIN, "--store", str(store), "-q", "run", str(path)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "px_charges needs the true image" in r.stderr + r.stdout and "r1.h5" in r.stderr + r.stdout, r.stderr
    assert not (store / "views" / "px" / "dl1" / "all" / "pedestal_hist.h5").exists()
