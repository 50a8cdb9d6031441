"""The simulated raw night read by the real clients, and analysed.

* protozfits 2.13.1 reads every simulated file: the table layout (DigicamConfig, then Events as
  the file's third HDU, as sst1mpipe's daily_analysis reads `f[2].header['TARGET']`), and every
  event's id, SWAT number, type, camera clock, waveforms (hashed in software pixel order
  through pixelsIndices), baselines and pixel order, against the truth the simulator wrote.
* astropy reads the headers, pandas the calibration tables as sst1mpipe reads them.
* `sst1mflow r0-dl1` on a simulated science run with its simulated calibration table finds
  the simulated showers: Hillas centroids at the true light centroids, intensities near the
  true photoelectrons, pedestal events not written but used (NSB level, monitoring rows).
Uses the release build (a night of a few seconds per run).
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", str(ROOT / "target" / "release" / "sst1mflow"))
ARRAY = ROOT.parent / "shared" / "data" / "sst1mpipe_data" / "sst1m_array.h5"


def fnv1a(samples):
    h = 0xcbf29ce484222325
    for b in samples.astype("<i2").tobytes():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    if not pathlib.Path(BIN).exists():
        pytest.skip(f"{BIN} not built")
    root = tmp_path_factory.mktemp("night") / "raw"
    r = subprocess.run([BIN, "--json", "simulate-night", str(root), "--date", "2026-12-05", "--run-duration", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    truth = json.loads((root / "truth" / "20261205" / "night.json").read_text())
    return root, truth


def test_protozfits_reads_every_file_as_simulated(night):
    from astropy.io import fits
    from protozfits import File
    root, truth = night
    n_checked = 0
    for run in truth["runs"]:
        for k, rel in enumerate(run["files"]):
            path = root / rel
            with fits.open(path) as h:
                assert [x.name for x in h] == ["PRIMARY", "DigicamConfig", "Events"]
                target = h[2].header["TARGET"]
            daily_target = target.split(",")[0].split("_")[0].replace(" ", "")
            expected = {"dark": "DARK", "transition": "Transition"}.get(run["kind"], run["target"])
            assert daily_target == expected
            rows = pd.read_csv(root / "truth" / "20261205" / (pathlib.Path(rel).name.replace(".fits.fz", ".csv")),
                               dtype={"samples_fnv1a": str})
            with File(str(path)) as f:
                events = list(f.Events)
            assert len(events) == len(rows) == run["events"][k]
            # Hash every 10th event's waveforms in full (all events' sums).
            for i, (e, row) in enumerate(zip(events, rows.itertuples())):
                assert e.telescopeID == 21 + k
                assert (e.eventNumber, e.arrayEvtNum, e.event_type) == (row.event_number, row.array_event_number,
                                                                        row.event_type)
                assert int(e.local_time_sec) * 1_000_000_000 + int(e.local_time_nanosec) == row.local_time_ns
                w = e.hiGain.waveforms
                order = np.asarray(w.pixelsIndices, dtype=np.int64)
                assert sorted(order) == list(range(1296))
                samples = np.empty((1296, 50), dtype=np.int16)
                samples[order] = np.asarray(w.samples, dtype=np.int16).reshape(1296, 50)
                baselines = np.empty(1296, dtype=np.int64)
                baselines[order] = np.asarray(w.baselines, dtype=np.int16)
                assert int(samples.astype(np.int64).sum()) == row.samples_sum
                assert int(baselines.sum()) == row.baselines_sum
                if i % 10 == 0:
                    assert fnv1a(samples.ravel()) == row.samples_fnv1a
                n_checked += 1
    assert n_checked > 1000


def test_calibration_tables_read_as_sst1mpipe_reads_them(night):
    root, truth = night
    for k, cam in enumerate(truth["cameras"]):
        df = pd.read_hdf(root / cam["calibration_table"])
        assert len(df) == 1296 and {"dc_to_pe", "calib_flag", "pixel_id"} <= set(df.columns)
        assert df.calib_flag.dtype == np.int64
        assert list(df.index[df.calib_flag != 1]) == cam["dead_pixels"]
        good = df[df.calib_flag == 1].dc_to_pe
        assert 20 < good.mean() < 26 and df[df.calib_flag != 1].dc_to_pe.isna().all()


def test_r0_dl1_finds_the_simulated_showers(night, tmp_path):
    if not ARRAY.exists():
        pytest.skip(f"{ARRAY} not found (the shared data folder is absent)")
    root, truth = night
    run = next(r for r in truth["runs"] if r["kind"] == "science")
    raw = root / run["files"][0]
    calib = root / truth["cameras"][0]["calibration_table"]
    out = tmp_path / "dl1"
    r = subprocess.run([BIN, "--store", str(tmp_path / "store"), "--json", "r0-dl1", str(raw), "--calibration",
                        str(calib), "--subarray", str(ARRAY), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    dl1 = out / raw.name.replace(".fits.fz", ".dl1.h5")
    params = pd.read_hdf(dl1, "/dl1/event/telescope/parameters/tel_021")
    rows = pd.read_csv(root / "truth" / "20261205" / raw.name.replace(".fits.fz", ".csv"))
    physics = rows[rows.event_type == 1]
    # Pedestal events are not written, every physics event is (with the SWAT number as id).
    assert sorted(params.event_id) == sorted(physics.array_event_number)
    m = params.merge(physics, left_on="event_id", right_on="array_event_number")
    bright = m[m.camera_frame_hillas_intensity > 300]
    assert len(bright) > 20
    offset = np.hypot(bright.camera_frame_hillas_x - bright.true_centroid_x_m,
                      bright.camera_frame_hillas_y - bright.true_centroid_y_m)
    assert np.median(offset) < 0.01, np.median(offset)  # m; a pixel is 0.024 m across
    ratio = bright.camera_frame_hillas_intensity / bright.n_photoelectrons
    assert 0.7 < np.median(ratio) < 1.1, np.median(ratio)
    # The pedestal events set the NSB level (meanQ) and fill the monitoring table.
    assert np.isfinite(params.meanQ).all() and (params.meanQ > 0).all()
    import tables
    with tables.open_file(str(dl1)) as f:
        n_monitoring = f.get_node("/dl1/monitoring/telescope/pedestal").nrows
    assert n_monitoring >= run["pedestal_events"][0] // 20 > 0


def test_dl1_stereo_matches_the_simulated_coincidences(night, tmp_path):
    if not ARRAY.exists():
        pytest.skip(f"{ARRAY} not found (the shared data folder is absent)")
    root, truth = night
    run = next(r for r in truth["runs"] if r["kind"] == "science")
    cams = truth["cameras"]
    recipe = {
        "name": "night-stereo", "config": str(ROOT / "config" / "sst1mpipe_data_config.json"),
        "inputs": {
            "run1": {"paths": [str(root / run["files"][0])], "kind": "zfits"},
            "run2": {"paths": [str(root / run["files"][1])], "kind": "zfits"},
            "cal1": {"paths": [str(root / cams[0]["calibration_table"])], "kind": "calibration"},
            "cal2": {"paths": [str(root / cams[1]["calibration_table"])], "kind": "calibration"},
            "array": {"paths": [str(ARRAY)], "kind": "subarray"},
        },
        "steps": [
            {"name": "dl1-1", "stage": "r0-dl1", "params": {"tel_id": 21},
             "inputs": {"r0": "run1", "calibration": "cal1", "subarray": "array"}},
            {"name": "dl1-2", "stage": "r0-dl1", "params": {"tel_id": 22},
             "inputs": {"r0": "run2", "calibration": "cal2", "subarray": "array"}},
            {"name": "stereo", "stage": "dl1-stereo", "inputs": {"tel1": "dl1-1.dl1", "tel2": "dl1-2.dl1"}},
        ],
    }
    path = tmp_path / "night-stereo.json"
    path.write_text(json.dumps(recipe))
    store = tmp_path / "store"
    r = subprocess.run([BIN, "--store", str(store), "--quiet", "run", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    view = store / "views" / "night-stereo" / "stereo" / "all"
    one = pd.read_hdf(view / "dl1_tel1.h5", "/dl1/event/telescope/parameters/tel_021")
    two = pd.read_hdf(view / "dl1_tel2.h5", "/dl1/event/telescope/parameters/tel_022")
    rows = [pd.read_csv(root / "truth" / "20261205" / pathlib.Path(f).name.replace(".fits.fz", ".csv"))
            for f in run["files"]]
    showers = [set(t[t.event_type == 1].array_event_number) for t in rows]
    coincident = showers[0] & showers[1]
    assert len(coincident) == run["coincident_showers"]
    # Every matched pair is a shower both telescopes recorded (the SWAT numbers), in the same order.
    assert list(one.event_id) == list(two.event_id)
    assert set(one.event_id) <= coincident
    assert len(one) > 0.2 * len(coincident), (len(one), len(coincident))
    assert np.isfinite(one.HillasReconstructor_alt).mean() > 0.9


def test_dl1_images_are_the_same_plain_or_deflated_and_whatever_the_decoding_memory(night, tmp_path):
    """r0-dl1 stores the image table checksummed but uncompressed unless `compress_images`; the
    values are the same either way, and the memory r0-dl1 may keep decoded tiles in
    (SST1MFLOW_R0_CACHE_MB) changes only its speed, never a byte."""
    if not ARRAY.exists():
        pytest.skip(f"{ARRAY} not found (the shared data folder is absent)")
    import h5py
    root, truth = night
    run = next(r for r in truth["runs"] if r["kind"] == "science")
    recipe = {
        "name": "images", "config": str(ROOT / "config" / "sst1mpipe_data_config.json"),
        "inputs": {
            "run": {"paths": [str(root / run["files"][0])], "kind": "zfits"},
            "cal": {"paths": [str(root / truth["cameras"][0]["calibration_table"])], "kind": "calibration"},
            "array": {"paths": [str(ARRAY)], "kind": "subarray"},
        },
        "steps": [
            {"name": "plain", "stage": "r0-dl1", "params": {"tel_id": 21},
             "inputs": {"r0": "run", "calibration": "cal", "subarray": "array"}},
            {"name": "deflated", "stage": "r0-dl1", "params": {"tel_id": 21, "compress_images": True},
             "inputs": {"r0": "run", "calibration": "cal", "subarray": "array"}},
        ],
    }
    path = tmp_path / "images.json"
    path.write_text(json.dumps(recipe))
    dl1 = {}
    for budget in ["0", "1", None]:
        store = tmp_path / f"store-{budget}"
        env = dict(os.environ)
        if budget is not None:
            env["SST1MFLOW_R0_CACHE_MB"] = budget
        r = subprocess.run([BIN, "--store", str(store), "--quiet", "--json", "run", str(path)], capture_output=True,
                           text=True, env=env)
        assert r.returncode == 0, r.stderr + r.stdout
        view = store / "views" / "images"
        dl1[budget] = {step: (view / step / "all" / "dl1.h5").read_bytes() for step in ["plain", "deflated"]}
        key = next(a["key"] for a in json.loads(r.stdout)["activities"] if a["step"] == "plain")
        log = subprocess.run([BIN, "--store", str(store), "log", key], capture_output=True, text=True).stdout
        kept = int(log.split(" events decoded once")[0].split()[-1])
        if budget == "0":
            assert kept == 0, log
        if budget is None:
            assert kept == run["events"][0], log  # the whole short run is kept
            files = {step: view / step / "all" / "dl1.h5" for step in ["plain", "deflated"]}
            files = {step: view / step / "all" / "dl1.h5" for step in ["plain", "deflated"]}
    # Keeping no tile, one tile's worth, or as many as memory allows: the same bytes.
    assert dl1["0"] == dl1["1"] == dl1[None]
    with h5py.File(files["plain"], "r") as p, h5py.File(files["deflated"], "r") as d:
        name = "/dl1/event/telescope/images/tel_021"
        assert p[name].compression is None and p[name].fletcher32
        assert d[name].compression == "gzip" and d[name].fletcher32
        assert p[name].shape == d[name].shape and p[name].shape[0] > 100
        assert p[name][:].tobytes() == d[name][:].tobytes()
        assert p[name].id.get_storage_size() > d[name].id.get_storage_size()
        # The other tables are deflated in both.
        assert p["/dl1/event/telescope/parameters/tel_021"].compression == "gzip"
        assert (p["/dl1/event/telescope/parameters/tel_021"][:].tobytes()
                == d["/dl1/event/telescope/parameters/tel_021"][:].tobytes())
