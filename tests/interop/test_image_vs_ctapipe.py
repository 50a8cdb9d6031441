"""R1 → DL1 image chain against ctapipe (PyPI) on identical simulated waveforms.

Waveforms of a few hundred shower-like images (elliptical Gaussian light distributions with a
time gradient, Poisson photoelectrons, the DigiCam pulse model, electronic noise) are written
once; our chain (examples/image_pipeline.rs) and ctapipe's functions process the same bytes.
Required agreement (issue 4): cleaning masks identical; charges and peak times within 1e-4;
Hillas, leakage, concentration, morphology and statistics within 1e-5 relative.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))
EXAMPLE = os.environ.get("SST1MFLOW_IMAGE_PIPELINE", str(ROOT / "target" / "debug" / "examples" / "image_pipeline"))
N_EVENTS = 300
PICTURE, BOUNDARY, MIN_NEIGHBOURS = 8.0, 4.0, 2

ctapipe = pytest.importorskip("ctapipe", reason="ctapipe is not installed (scripts/setup.sh installs it)")
import astropy.units as u  # noqa: E402
from ctapipe.image import (  # noqa: E402
    apply_time_delta_cleaning,
    concentration_parameters,
    descriptive_statistics,
    hillas_parameters,
    leakage_parameters,
    morphology_parameters,
    tailcuts_clean,
    timing_parameters,
)
from ctapipe.image.extractor import extract_around_peak, integration_correction  # noqa: E402
from ctapipe.instrument import CameraGeometry, PixelShape  # noqa: E402


def simulate(cam, rng):
    x, y = np.array(cam["pix_x"]), np.array(cam["pix_y"])
    t_pulse, a_pulse = np.array(cam["pulse"]["t_ns"]), np.array(cam["pulse"]["amplitude"])
    area = cam["pulse"]["area_ns"]
    samples = np.arange(50) * 4.0
    out = np.empty((N_EVENTS, 1296, 50), dtype=np.float32)
    for e in range(N_EVENTS):
        r, phi = 0.35 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        cx, cy, psi = r * np.cos(phi), r * np.sin(phi), rng.uniform(-np.pi / 2, np.pi / 2)
        length, width = rng.uniform(0.02, 0.09), rng.uniform(0.006, 0.02)
        total = 10 ** rng.uniform(1.7, 3.5)
        dx, dy = x - cx, y - cy
        lon, lat = dx * np.cos(psi) + dy * np.sin(psi), -dx * np.sin(psi) + dy * np.cos(psi)
        density = np.exp(-0.5 * (lon / length) ** 2 - 0.5 * (lat / width) ** 2) / (2 * np.pi * length * width)
        pe = rng.poisson(total * density * 4.7016e-4)
        t_pix = 60 + rng.uniform(-60, 60) * lon + rng.normal(0, 0.5, 1296)
        shape = np.interp(samples[None, :] - t_pix[:, None] + 0.0, t_pulse, a_pulse, left=0, right=0) * 4.0 / area
        out[e] = pe[:, None] * shape + rng.normal(0, 0.6, (1296, 50))
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    cam = json.loads(subprocess.run([BIN, "--json", "camera"], check=True, capture_output=True, text=True).stdout)
    waveforms = simulate(cam, np.random.default_rng(20261124))
    path = tmp_path_factory.mktemp("wf") / "waveforms.f32"
    waveforms.astype("<f4").tofile(path)
    dl1 = path.parent / "ours.dl1.h5"
    ours = json.loads(subprocess.run(
        [EXAMPLE, str(path), str(N_EVENTS), str(PICTURE), str(BOUNDARY), str(MIN_NEIGHBOURS), str(dl1)],
        check=True, capture_output=True, text=True).stdout)
    ours["dl1"] = dl1
    ours["waveforms"] = path

    geom = CameraGeometry(
        name="DigiCam", pix_id=np.arange(1296), pix_x=np.array(cam["pix_x"]) * u.m, pix_y=np.array(cam["pix_y"]) * u.m,
        pix_area=np.full(1296, cam["pix_area"]) * u.m**2, pix_type=PixelShape.HEXAGON,
        pix_rotation=30 * u.deg, cam_rotation=0 * u.deg,
    )
    pulse_01 = np.array(cam["pulse"]["amplitude"])  # the 0.1 ns reference table our chain uses
    assert len(pulse_01) == 1520
    corr = integration_correction(pulse_01[None, :], 0.1, 4.0, 7, 3)[0]
    ref = {"integration_correction": corr, "events": []}
    for e in range(N_EVENTS):
        w = waveforms[e]
        charge, peak_time = extract_around_peak(w, w.argmax(axis=-1), 7, 3, 0.25)
        charge *= corr
        mask = tailcuts_clean(geom, charge, picture_thresh=PICTURE, boundary_thresh=BOUNDARY,
                              keep_isolated_pixels=False, min_number_picture_neighbors=MIN_NEIGHBOURS)
        mask = apply_time_delta_cleaning(geom, mask, peak_time, min_number_neighbors=1, time_limit=8)
        params = None
        if mask.any() and charge[mask].sum() > 0:
            h = hillas_parameters(geom[mask], charge[mask])
            lk = leakage_parameters(geom, charge, mask)
            conc = concentration_parameters(geom[mask], charge[mask], h)
            morph = morphology_parameters(geom, mask)
            timing = timing_parameters(geom[mask], charge[mask], peak_time[mask], h)
            params = {
                "intensity": h.intensity, "x": h.x.to_value(u.m), "y": h.y.to_value(u.m), "r": h.r.to_value(u.m),
                "phi": h.phi.to_value(u.rad), "length": h.length.to_value(u.m),
                "length_uncertainty": h.length_uncertainty.to_value(u.m), "width": h.width.to_value(u.m),
                "width_uncertainty": h.width_uncertainty.to_value(u.m), "psi": h.psi.to_value(u.rad),
                "psi_uncertainty": h.psi_uncertainty.to_value(u.rad),
                "transverse_cog_uncertainty": h.transverse_cog_uncertainty.to_value(u.m),
                "skewness": h.skewness, "kurtosis": h.kurtosis,
                # ctapipe >= 0.20 divides the leakage pixels by the cleaned pixels; 0.17 (which
                # sst1mpipe pins, and we follow) by the camera's 1296.
                "leakage_pixels_width_1": lk.pixels_width_1 * mask.sum() / 1296,
                "leakage_pixels_width_2": lk.pixels_width_2 * mask.sum() / 1296,
                "leakage_intensity_width_1": lk.intensity_width_1, "leakage_intensity_width_2": lk.intensity_width_2,
                "concentration_cog": conc.cog, "concentration_core": conc.core, "concentration_pixel": conc.pixel,
                "timing_slope": timing.slope.to_value(1 / u.m), "timing_intercept": timing.intercept,
                "timing_deviation": timing.deviation,
                "n_pixels": morph.n_pixels, "n_islands": morph.n_islands, "n_small_islands": morph.n_small_islands,
                "n_medium_islands": morph.n_medium_islands, "n_large_islands": morph.n_large_islands,
                # ctapipe computes statistics in the input's precision: float32 (as
                # ImageProcessor, and we) for the 1e-5 comparison, float64 for a looser one.
                "intensity_statistics": descriptive_statistics(charge[mask].astype(np.float32)),
                "peak_time_statistics": descriptive_statistics(peak_time[mask].astype(np.float32)),
                "peak_time_statistics_f64": descriptive_statistics(peak_time[mask].astype(np.float64)),
            }
        ref["events"].append({"image": charge, "peak_time": peak_time, "mask": mask, "params": params})
    return ours, ref, geom, cam


def test_same_neighbours_as_ctapipe_derives(both):
    _, _, geom, cam = both
    ctapipe_neighbours = [sorted(np.nonzero(row)[0].tolist()) for row in geom.neighbor_matrix]
    assert ctapipe_neighbours == [sorted(n) for n in cam["neighbors"]]


def test_integration_correction(both):
    ours, ref, _, _ = both
    assert abs(ours["integration_correction"] - ref["integration_correction"]) < 1e-12


def test_charges_and_peak_times(both):
    ours, ref, _, _ = both
    for o, r in zip(ours["events"], ref["events"]):
        assert np.allclose(o["image"], r["image"], rtol=1e-4, atol=1e-4)
        assert np.allclose(o["peak_time"], r["peak_time"], rtol=1e-4, atol=1e-4)


def test_cleaning_masks_identical(both):
    ours, ref, _, _ = both
    n_kept = 0
    for i, (o, r) in enumerate(zip(ours["events"], ref["events"])):
        assert np.array_equal(np.array(o["mask"]), r["mask"]), f"event {i}"
        n_kept += int(r["mask"].sum())
    assert n_kept > 10 * N_EVENTS, "the sample must exercise cleaning on real images"


def as_float(v):
    """Our JSON writes NaN as null."""
    return float("nan") if v is None else float(v)


SCALARS = ["intensity", "x", "y", "r", "phi", "length", "length_uncertainty", "width", "width_uncertainty", "psi",
           "psi_uncertainty", "transverse_cog_uncertainty", "skewness", "kurtosis",
           "leakage_pixels_width_1", "leakage_pixels_width_2", "leakage_intensity_width_1",
           "leakage_intensity_width_2", "concentration_cog", "concentration_core", "concentration_pixel",
           "n_pixels", "n_islands", "n_small_islands", "n_medium_islands", "n_large_islands"]


def test_image_parameters_within_1e_5(both):
    ours, ref, _, _ = both
    compared = 0
    for i, (o, r) in enumerate(zip(ours["events"], ref["events"])):
        assert (o["params"] is None) == (r["params"] is None), f"event {i}"
        if r["params"] is None:
            continue
        compared += 1
        for k in SCALARS:
            a, b = as_float(o["params"][k]), float(r["params"][k])
            assert np.isclose(a, b, rtol=1e-5, atol=1e-9, equal_nan=True), f"event {i} {k}: ours {a} ctapipe {b}"
        for group in ("intensity_statistics", "peak_time_statistics"):
            rs = r["params"][group]
            for k in ("max", "min", "mean", "std", "skewness", "kurtosis"):
                a, b = as_float(o["params"][group][k]), float(getattr(rs, k))
                assert np.isclose(a, b, rtol=1e-5, atol=1e-6), f"event {i} {group}.{k}: ours {a} ctapipe {b}"
                c = float(getattr(r["params"]["peak_time_statistics_f64"], k)) if group == "peak_time_statistics" else b
                assert np.isclose(a, c, rtol=1e-3, atol=1e-3), f"event {i} {group}.{k} (float64): ours {a} ctapipe {c}"
    assert compared > 0.8 * N_EVENTS


def test_timing_fit_agrees_with_ctapipes_lts(both):
    # Both fit with least trimmed squares from 5 random two-point starts. Ours reproduce
    # ctapipe 0.17's starts exactly (it reseeds on every call; test_dl1_vs_ctapipe017 requires
    # 1e-5 there); this newer ctapipe may draw them differently, and from different starts the
    # C-steps can settle in different local minima, so most, not all, images agree here.
    ours, ref, _, _ = both
    agree = total = 0
    for o, r in zip(ours["events"], ref["events"]):
        if r["params"] is None or r["params"]["n_pixels"] < 10:
            continue
        total += 1
        if all(np.isclose(as_float(o["params"][k]), r["params"][k], rtol=1e-5, atol=1e-6, equal_nan=True)
               for k in ("timing_slope", "timing_intercept", "timing_deviation")):
            agree += 1
    assert agree >= 0.85 * total, f"{agree}/{total}"



def test_dl1_file_reads_in_pandas_pytables_and_h5py(both):
    import h5py
    import pandas as pd
    import tables

    ours, ref, _, _ = both
    dl1 = ours["dl1"]
    params = pd.read_hdf(dl1, key="/dl1/event/telescope/parameters/tel_001")
    assert len(params) == N_EVENTS
    reference = json.loads(json.dumps([r["params"] and {k: r["params"][k] for k in SCALARS} for r in ref["events"]],
                                      default=float))
    for i, r in enumerate(reference):
        row = params.iloc[i]
        assert row["event_id"] == i and row["obs_id"] == 1 and row["tel_id"] == 1
        if r is None:
            assert np.isnan(row["camera_frame_hillas_intensity"]) and row["morphology_n_pixels"] == -1
            continue
        assert np.isclose(row["camera_frame_hillas_intensity"], r["intensity"], rtol=1e-5)
        assert np.isclose(row["camera_frame_hillas_psi"], np.degrees(r["psi"]), rtol=1e-5, atol=1e-7)
        assert np.isclose(row["camera_frame_hillas_phi"], np.degrees(r["phi"]), rtol=1e-5, atol=1e-7)
        assert np.isclose(row["leakage_intensity_width_2"], r["leakage_intensity_width_2"], rtol=1e-5, atol=1e-7)
        assert row["morphology_n_islands"] == r["n_islands"]
    assert str(params["leakage_intensity_width_1"].dtype) == "float32"
    assert str(params["morphology_n_pixels"].dtype) == "int64"
    with tables.open_file(str(dl1)) as f:
        t = f.get_node("/dl1/event/telescope/images/tel_001")
        assert t.nrows == N_EVENTS and t.coldescrs["image"].shape == (1296,)
        row = t[5]
        assert np.allclose(row["image"], ours["events"][5]["image"])
        # Bools are PyTables' 8-bit bitfield, as ctapipe writes them: numpy bool to PyTables.
        assert t.coldtypes["image_mask"].base == np.dtype(bool) and t.coldtypes["is_valid"] == np.dtype(bool)
        assert np.array_equal(row["image_mask"], ours["events"][5]["mask"])
        assert row["is_valid"] == any(ours["events"][5]["mask"])
        p = f.get_node("/dl1/event/telescope/parameters/tel_001")
        assert p.attrs["CTAFIELD_14_UNIT"] == "deg" and p.attrs["FIELD_14_NAME"] == "camera_frame_hillas_psi"
    with h5py.File(dl1, "r") as f:
        assert f.attrs["sst1mflow_activity_key"] == "0" * 64
        # h5py reads the bitfield as uint8 0/1 (as for ctapipe's own files).
        images = f["/dl1/event/telescope/images/tel_001"]
        assert images.id.get_type().get_member_type(images.dtype.names.index("is_valid")).get_class() == h5py.h5t.BITFIELD
        assert set(np.unique(images["image_mask"][:5]).tolist()) <= {0, 1}
        assert f["/dl1/event/telescope/parameters/tel_001"].compression == "gzip"


def test_dl1_bytes_are_identical_on_a_second_run(both, tmp_path):
    ours, _, _, _ = both
    again = tmp_path / "again.dl1.h5"
    subprocess.run([EXAMPLE, str(ours["waveforms"]), str(N_EVENTS), str(PICTURE), str(BOUNDARY), str(MIN_NEIGHBOURS),
                    str(again)], check=True, capture_output=True)
    assert again.read_bytes() == pathlib.Path(ours["dl1"]).read_bytes()
