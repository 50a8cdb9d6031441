"""The generated DigiCam description against the real SST-1M tables in ../shared/data.

The reference is the camera geometry and readout that ctapipe wrote from the sim_telarray
SST-1M file (dl1_reference/, blosc-compressed: read with PyTables, which bundles blosc).
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))
REFERENCE = ROOT.parent / "shared" / "data" / "dl1_reference" / "sst1m_camframe.dl1.h5"


@pytest.fixture(scope="module")
def ours():
    out = subprocess.run([BIN, "--json", "camera"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.skip(f"reference data not found at {REFERENCE} (the shared data folder is absent)")
    import tables
    with tables.open_file(str(REFERENCE)) as f:
        geom = f.get_node("/configuration/instrument/telescope/camera/geometry_0")
        readout = f.get_node("/configuration/instrument/telescope/camera/readout_0")
        return {
            "geometry": geom.read(),
            "pix_rot": float(geom.attrs["PIX_ROT"]),
            "cam_rot": float(geom.attrs["CAM_ROT"]),
            "pulse": readout.read(),
            "samples": int(readout.attrs["NSAMPLES"]),
            "sampfreq": float(readout.attrs["SAMPFREQ"]),
        }


def test_pixel_ids_and_positions_agree(ours, reference):
    g = reference["geometry"]
    assert list(g["pix_id"]) == ours["pix_id"]
    dx = np.abs(np.array(ours["pix_x"]) - g["pix_x"].astype(float))
    dy = np.abs(np.array(ours["pix_y"]) - g["pix_y"].astype(float))
    # The table lists column positions rounded to 0.01 mm; the lattice is exact.
    assert dx.max() <= 1.1e-5, dx.max()
    assert dy.max() <= 1e-7, dy.max()
    assert np.allclose(g["pix_area"], ours["pix_area"], rtol=1e-6)
    assert reference["pix_rot"] == ours["pix_rot_deg"] and reference["cam_rot"] == ours["cam_rot_deg"]


def test_neighbours_agree_pixel_by_pixel(ours, reference):
    g = reference["geometry"]
    x, y = g["pix_x"].astype(float), g["pix_y"].astype(float)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    ref_neighbours = [sorted(np.nonzero(row < 0.0243 * 1.1)[0].tolist()) for row in d]
    assert ref_neighbours == [sorted(n) for n in ours["neighbors"]]
    counts = np.bincount([len(n) for n in ref_neighbours])
    assert counts[2] == 3 and counts[3] == 69 and counts[5] == 69 and counts[6] == 1155


def test_border_masks_as_ctapipe_defines_them(ours, reference):
    n = np.array([len(v) for v in ours["neighbors"]])
    width1 = n < n.max()
    assert np.array_equal(width1, ours["border_width_1"]) and width1.sum() == 141
    width2 = np.array([any(width1[j] for j in v) for v in ours["neighbors"]])
    assert np.array_equal(width2, ours["border_width_2"]) and width2.sum() == 273


def test_readout_and_pulse_shape(ours, reference):
    assert ours["n_samples"] == reference["samples"] == 50
    assert abs(1 / reference["sampfreq"] - ours["sample_ns"]) < 1e-9
    p = reference["pulse"]
    t = p["reference_pulse_sample_time"].astype(float)
    ref = p["reference_pulse_shape_channel0"].astype(float)
    model = np.interp(t, ours["pulse"]["t_ns"], ours["pulse"]["amplitude"])
    assert np.abs(model - ref).max() < 0.05
    assert np.sqrt(np.mean((model - ref) ** 2)) < 0.02
    assert abs(t[ref.argmax()] - ours["pulse"]["peak_ns"]) < 0.4
