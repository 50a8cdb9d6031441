"""r0-dl1 on real raw files against the Python readers on the same files.

* sim_telarray: `sst1mflow r0-dl1` on the SST-1M test file vs ctapipe 0.28 (SimTelEventSource,
  which reads through eventio, + CameraCalibrator with LocalPeakWindowSum and the integration
  correction from the file's reference pulse): same events, same charges and peak times per
  pixel, same truth and thrown-event numbers.
* zfits: the DL1 of a DigiCam file vs protozfits' decoding of the same events (event numbers,
  clock times) and a charge recomputed in numpy from protozfits' raw samples with the same
  calibration table.
Skips where the shared data folder is absent.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))
DATA = ROOT.parent / "shared" / "data"
SIMTEL = DATA / "mc_simtel" / "simtel_test_file.simtel.gz"
ZFITS = DATA / "r0_zfits" / "example_SST1M_20180822.fits.fz"
ARRAY = DATA / "sst1mpipe_data" / "sst1m_array.h5"


def read_images(path, key):
    """The image table (array columns: PyTables, not pandas)."""
    import tables
    with tables.open_file(str(path)) as f:
        return f.get_node(key).read()


def need(path):
    if not path.exists():
        pytest.skip(f"sample file {path} not found (the shared data folder is absent)")


def mc_config(tmp, integration_correction):
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    cfg["NsbCalibrator"]["mc_correction_for_PDE"] = False
    cfg["CameraCalibrator"]["LocalPeakWindowSum"]["apply_integration_correction"] = integration_correction
    path = tmp / f"mc-{integration_correction}.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def simtel_dl1(tmp_path_factory):
    need(SIMTEL)
    tmp = tmp_path_factory.mktemp("simtel")
    cfg = mc_config(tmp, True)
    out = tmp / "out"
    r = subprocess.run([BIN, "--store", str(tmp / "store"), "--json", "r0-dl1", str(SIMTEL), "--config", str(cfg),
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["tel_id"] == 1
    return out / "simtel_test_file.dl1.h5"


def test_simtel_charges_equal_ctapipe(simtel_dl1):
    from ctapipe.calib import CameraCalibrator
    from ctapipe.io import SimTelEventSource
    from traitlets.config import Config

    images = read_images(simtel_dl1, "/dl1/event/telescope/images/tel_001")
    ours = {int(e): (np.asarray(i, dtype=np.float64), np.asarray(t, dtype=np.float64))
            for e, i, t in zip(images["event_id"], images["image"], images["peak_time"])}
    config = Config({"LocalPeakWindowSum": {"window_width": 7, "window_shift": 3,
                                            "apply_integration_correction": True}})
    source = SimTelEventSource(SIMTEL, focal_length_choice="EQUIVALENT", config=config)
    calibrator = CameraCalibrator(subarray=source.subarray, image_extractor_type="LocalPeakWindowSum", config=config)
    seen = []
    worst_charge = worst_time = 0.0
    for event in source:
        calibrator(event)
        dl1 = event.dl1.tel[1]
        image, peak = ours[event.index.event_id]
        ref_image = dl1.image.astype(np.float64)
        worst_charge = max(worst_charge, float(np.max(np.abs(image - ref_image) / np.maximum(np.abs(ref_image), 1.0))))
        worst_time = max(worst_time, float(np.max(np.abs(peak - dl1.peak_time))))
        seen.append(event.index.event_id)
    assert seen == [1102, 1600, 1601, 3308, 4209, 6205, 7300, 9205, 10000]
    assert sorted(ours) == seen
    print(f"simtel vs ctapipe: worst charge difference {worst_charge:.2e} (relative), peak time {worst_time:.2e} ns")
    assert worst_charge < 1e-4
    assert worst_time < 1e-4


def test_simtel_truth_and_thrown_events_equal_eventio(simtel_dl1):
    from eventio import SimTelFile

    params = pd.read_hdf(simtel_dl1, "/dl1/event/telescope/parameters/tel_001")
    run = pd.read_hdf(simtel_dl1, "/configuration/simulation/run")
    with SimTelFile(str(SIMTEL)) as f:
        truth = {ev["event_id"]: ev for ev in f}
        mc = f.mc_run_headers[0]
    assert (int(run["n_showers"][0]), int(run["shower_reuse"][0])) == (mc["n_showers"], mc["n_use"])
    assert run["min_scatter_range"][0] == mc["core_range"][0] and run["min_viewcone_radius"][0] == mc["viewcone"][0]
    assert np.isclose(run["energy_range_min"][0], mc["E_range"][0]) and np.isclose(run["energy_range_max"][0], mc["E_range"][1])
    assert np.isclose(run["max_scatter_range"][0], mc["core_range"][1])
    for _, row in params.iterrows():
        ev = truth[int(row["event_id"])]
        assert np.isclose(row["true_energy"], ev["mc_shower"]["energy"], rtol=1e-6)
        assert np.isclose(row["true_core_x"], ev["mc_event"]["xcore"], rtol=1e-6)
        assert np.isclose(row["true_alt"], np.degrees(ev["mc_shower"]["altitude"]), atol=1e-5)
        # Vertical pointing and showers: the impact is the core distance from the telescope.
        assert np.isclose(row["true_tel_impact_distance"], np.hypot(ev["mc_event"]["xcore"], ev["mc_event"]["ycore"]), rtol=1e-4)


def test_zfits_events_and_charges_equal_protozfits(tmp_path):
    need(ZFITS)
    need(ARRAY)
    from protozfits import File

    n = 1296
    dc_to_pe = 22.0 + (np.arange(n) % 9) * 0.5
    (tmp_path / "calib.txt").write_text("pixel_id dc_to_pe calib_flag\n" + "".join(f"{p} {dc_to_pe[p]} 1\n" for p in range(n)))
    cfg = json.loads((ROOT / "config" / "sst1mpipe_data_config.json").read_text())
    cfg["CameraCalibrator"]["LocalPeakWindowSum"]["apply_integration_correction"] = False
    cfg["NsbCalibrator"]["apply_global_Vdrop_correction"] = False
    cfg["telescope_calibration"]["dynamic_dead_px_interpolation"] = False
    (tmp_path / "data.json").write_text(json.dumps(cfg))
    r = subprocess.run([BIN, "--store", str(tmp_path / "store"), "r0-dl1", str(ZFITS), "--calibration",
                        str(tmp_path / "calib.txt"), "--subarray", str(ARRAY), "--config", str(tmp_path / "data.json"), "--obs-id", "201808220001",
                        "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    dl1 = tmp_path / "out" / "example_SST1M_20180822.dl1.h5"
    params = pd.read_hdf(dl1, "/dl1/event/telescope/parameters/tel_022")
    images = read_images(dl1, "/dl1/event/telescope/images/tel_022")
    ref = {}
    with File(str(ZFITS)) as f:
        for e in f.Events:
            if e.event_type == 8:
                continue
            order = np.argsort(e.hiGain.waveforms.pixelsIndices)
            samples = e.hiGain.waveforms.samples.reshape(n, -1)[order].astype(np.float64)
            baseline = e.hiGain.waveforms.baselines[order] / 16.0
            r1 = (samples - baseline[:, None]) / dc_to_pe[:, None]
            # LocalPeakWindowSum: samples peak - 3 .. peak + 3, cut at the ends of the readout.
            peak = np.argmax(r1, axis=1)
            charge = np.array([r1[p, max(k - 3, 0):min(k + 4, r1.shape[1])].sum() for p, k in enumerate(peak)])
            clock = e.local_time_sec * 1_000_000_000 + e.local_time_nanosec
            ref[e.eventNumber] = (charge, clock)
    assert sorted(ref) == sorted(params["event_id"].astype(int))
    worst = 0.0
    for event_id, image in zip(images["event_id"], images["image"]):
        charge, _ = ref[int(event_id)]
        worst = max(worst, float(np.max(np.abs(np.asarray(image) - charge) / np.maximum(np.abs(charge), 1.0))))
    print(f"zfits vs protozfits + numpy: worst charge difference {worst:.2e} (relative)")
    assert worst < 1e-4
    # local_time is the UTC Unix time of the (TAI) camera clock: 37 s apart in 2018.
    for event_id, t, full, frac in zip(params["event_id"], params["local_time"], params["time_wr_full_seconds"],
                                       params["time_wr_frac_seconds"]):
        clock = ref[int(event_id)][1]
        assert abs(clock / 1e9 - 37.0 - t) < 1e-5
        # The White Rabbit clock survives to the nanosecond, as sst1mpipe's matcher rebuilds it.
        assert int(full) * 1_000_000_000 + int(round(frac * 1e9)) == clock
    # ctapipe's trigger tables: the camera clock as MJD TAI (ctapipe 0.17's format), to 1 µs.
    from ctapipe.io import read_table
    for key in ["/dl1/event/subarray/trigger", "/dl1/event/telescope/trigger"]:
        trig = read_table(dl1, key)
        assert list(trig["event_id"]) == list(params["event_id"]), key
        assert set(trig["event_type"]) == {32}
        clock = np.array([ref[int(e)][1] for e in trig["event_id"]], dtype=np.int64)
        assert np.max(np.abs((trig["time"].unix_tai - clock // 1_000_000_000) - (clock % 1_000_000_000) / 1e9)) < 1e-6
    tel = read_table(dl1, "/dl1/event/telescope/trigger")
    assert set(tel["tel_id"]) == {22} and set(tel["n_trigger_pixels"]) == {-1}
    sub = read_table(dl1, "/dl1/event/subarray/trigger")
    assert sub["tels_with_trigger"].dtype == bool and sub["tels_with_trigger"].shape == (len(sub), 1)
    assert sub["tels_with_trigger"].all()


def test_simtel_trigger_times_equal_ctapipe(simtel_dl1):
    """sim_telarray's central trigger time, as ctapipe's SimTelEventSource reads it."""
    from ctapipe.io import SimTelEventSource, read_table

    ref = {e.index.event_id: e.trigger.time for e in SimTelEventSource(SIMTEL, focal_length_choice="EQUIVALENT")}
    for key in ["/dl1/event/subarray/trigger", "/dl1/event/telescope/trigger"]:
        trig = read_table(simtel_dl1, key)
        assert sorted(trig["event_id"]) == sorted(ref), key
        for event_id, time in zip(trig["event_id"], trig["time"]):
            assert abs((time - ref[int(event_id)]).to_value("s")) < 1e-6, (key, event_id)  # MJD float64
