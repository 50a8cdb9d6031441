"""Stereo geometry (crates/science/src/reco/stereo.rs) against ctapipe 0.28's HillasReconstructor.

Two SST-1M telescopes at the Ondřejov spacing (143 m north, 61 m west of each other), the
DigiCam camera built from `sst1mflow --json camera`; a few hundred events with random camera-frame
Hillas parameters and pointings (parallel, and slightly divergent). ctapipe's HillasReconstructor
runs on ArrayEventContainers, ours (examples/stereo_reco.rs) on the same numbers. Required:
direction (1e-9 rad), core, h_max and each telescope's impact distance (1e-6 relative) equal,
the same events refused.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))
EXAMPLE = os.environ.get("SST1MFLOW_STEREO_RECO", str(ROOT / "target" / "debug" / "examples" / "stereo_reco"))
N_EVENTS = 300
POSITIONS = {1: [0.0, 0.0, 0.0], 2: [142.8, 60.7, 0.3]}

pytest.importorskip("ctapipe", reason="ctapipe is not installed (scripts/setup.sh installs it)")
import astropy.units as u  # noqa: E402
from astropy.coordinates import EarthLocation  # noqa: E402
from ctapipe.containers import (  # noqa: E402
    ArrayEventContainer,
    CameraHillasParametersContainer,
    ImageParametersContainer,
    LeakageContainer,
    MorphologyContainer,
)
from ctapipe.coordinates import CameraFrame  # noqa: E402
from ctapipe.instrument import (  # noqa: E402
    CameraDescription,
    CameraGeometry,
    CameraReadout,
    OpticsDescription,
    PixelShape,
    ReflectorShape,
    SizeType,
    SubarrayDescription,
    TelescopeDescription,
)
from ctapipe.reco import HillasReconstructor  # noqa: E402


def sst1m_subarray():
    cam = json.loads(subprocess.run([BIN, "--json", "camera"], capture_output=True, text=True, check=True).stdout)
    geom = CameraGeometry("DigiCam", np.arange(1296), np.array(cam["pix_x"]) * u.m, np.array(cam["pix_y"]) * u.m,
                          np.full(1296, cam["pix_area"]) * u.m**2, pix_type=PixelShape.HEXAGON,
                          pix_rotation=30 * u.deg, cam_rotation=0 * u.deg,
                          frame=CameraFrame(focal_length=5.6 * u.m))
    readout = CameraReadout(name="DigiCam", sampling_rate=0.25 * u.GHz,
                            reference_pulse_shape=np.array([cam["pulse"]["amplitude"]]),
                            reference_pulse_sample_width=0.1 * u.ns, n_channels=1, n_pixels=1296, n_samples=50)
    optics = OpticsDescription(name="SST-1M", size_type=SizeType.SST, reflector_shape=ReflectorShape.DAVIES_COTTON,
                               equivalent_focal_length=5.6 * u.m, effective_focal_length=5.69705 * u.m,
                               mirror_area=9.418 * u.m**2, n_mirrors=1, n_mirror_tiles=18)
    tel = TelescopeDescription(name="SST-1M", optics=optics,
                               camera=CameraDescription(name="DigiCam", geometry=geom, readout=readout))
    site = EarthLocation(lon=14.782924 * u.deg, lat=49.9118 * u.deg, height=510 * u.m)
    return SubarrayDescription("sst1m", tel_positions={t: p * u.m for t, p in POSITIONS.items()},
                               tel_descriptions={1: tel, 2: tel}, reference_location=site)


def random_events(rng):
    events = []
    for k in range(N_EVENTS):
        alt, az = np.radians(rng.uniform(50, 85)), np.radians(rng.uniform(0, 360))
        images = []
        for tel_id, pos in POSITIONS.items():
            # Every fourth event: the telescopes point 0.3 deg apart (divergent pointing).
            d = np.radians(0.3) if (k % 4 == 0 and tel_id == 2) else 0.0
            images.append({"tel_id": tel_id, "position": pos, "pointing": [alt + d, az - d],
                           "x": rng.uniform(-0.35, 0.35), "y": rng.uniform(-0.35, 0.35),
                           "psi": rng.uniform(-np.pi / 2, np.pi / 2), "intensity": rng.uniform(60, 5000),
                           "length": rng.uniform(0.02, 0.08), "width": rng.uniform(0.004, 0.02)})
        if k % 50 == 7:
            images[1]["width"] = 0.0  # refused by both (InvalidWidth)
        events.append({"array_pointing": [alt, az], "images": images})
    return events


def ctapipe_reconstruct(subarray, reco, event):
    ev = ArrayEventContainer()
    ev.trigger.tels_with_trigger = np.array([i["tel_id"] for i in event["images"]])
    ev.monitoring.pointing.array_altitude = event["array_pointing"][0] * u.rad
    ev.monitoring.pointing.array_azimuth = event["array_pointing"][1] * u.rad
    for i in event["images"]:
        t = i["tel_id"]
        ev.monitoring.tel[t].pointing.altitude = i["pointing"][0] * u.rad
        ev.monitoring.tel[t].pointing.azimuth = i["pointing"][1] * u.rad
        hillas = CameraHillasParametersContainer(x=i["x"] * u.m, y=i["y"] * u.m, psi=np.degrees(i["psi"]) * u.deg,
                                                 intensity=i["intensity"], length=i["length"] * u.m,
                                                 width=i["width"] * u.m)
        ev.dl1.tel[t].parameters = ImageParametersContainer(
            hillas=hillas, leakage=LeakageContainer(intensity_width_2=0.0), morphology=MorphologyContainer(n_pixels=10))
    reco(ev)
    g = ev.dl2.stereo.geometry["HillasReconstructor"]
    if not g.is_valid:
        return None
    return {"alt": g.alt.to_value(u.rad), "az": g.az.to_value(u.rad), "core_x": g.core_x.to_value(u.m),
            "core_y": g.core_y.to_value(u.m), "core_tilted_x": g.core_tilted_x.to_value(u.m),
            "core_tilted_y": g.core_tilted_y.to_value(u.m), "h_max": g.h_max.to_value(u.m),
            "alt_uncert": g.alt_uncert.to_value(u.rad), "average_intensity": g.average_intensity,
            "impact": {str(t): ev.dl2.tel[t].impact["HillasReconstructor"].distance.to_value(u.m)
                       for t in POSITIONS}}


def test_hillas_reconstructor_equals_ctapipe():
    if not pathlib.Path(EXAMPLE).exists():
        pytest.skip(f"{EXAMPLE} not built (cargo build --examples)")
    subarray = sst1m_subarray()
    reco = HillasReconstructor(subarray)
    radius = subarray.tel[1].camera.geometry.guess_radius().to_value(u.m)
    cam = json.loads(subprocess.run([BIN, "--json", "camera"], capture_output=True, text=True, check=True).stdout)
    assert abs(cam["radius_m"] - radius) < 1e-12  # our CameraGeometry::radius is ctapipe's guess_radius
    height = subarray.reference_location.geodetic.height.to_value(u.m)
    events = random_events(np.random.default_rng(11))
    lines = []
    for e in events:
        for i in e["images"]:
            i.update(focal_length=5.6, camera_radius=radius)
        lines.append(json.dumps({**e, "reference_height": height}))
    out = subprocess.run([EXAMPLE], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    ours = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(ours) == len(events)
    worst = {}
    refused = 0
    for e, mine in zip(events, ours):
        ref = ctapipe_reconstruct(subarray, reco, e)
        assert (mine is None) == (ref is None), e
        if ref is None:
            refused += 1
            continue
        for key in ["alt", "az"]:
            diff = abs(np.angle(np.exp(1j * (mine[key] - ref[key]))))
            worst[key] = max(worst.get(key, 0.0), diff)
            assert diff < 1e-9, (key, mine[key], ref[key])
        # The spread of the pairwise intersections is 0 for two telescopes; arccos of a cosine
        # rounded to 1 - 1e-16 gives up to ~2e-8 rad on either side.
        assert abs(mine["alt_uncert"] - ref["alt_uncert"]) < 1e-7
        for key in ["core_x", "core_y", "core_tilted_x", "core_tilted_y", "h_max"]:
            diff = abs(mine[key] - ref[key]) / max(abs(ref[key]), 1.0)
            worst[key] = max(worst.get(key, 0.0), diff)
            assert diff < 1e-6, (key, mine[key], ref[key])
        for t in ref["impact"]:
            diff = abs(mine["impact"][t] - ref["impact"][t]) / max(ref["impact"][t], 1.0)
            worst["impact"] = max(worst.get("impact", 0.0), diff)
            assert diff < 1e-6, (t, mine["impact"][t], ref["impact"][t])
        assert np.isclose(mine["average_intensity"], ref["average_intensity"], rtol=1e-12)
    assert refused == N_EVENTS // 50
    print("stereo vs ctapipe, worst differences:", {k: f"{v:.1e}" for k, v in worst.items()})


def test_dl1_stereo_stage_equals_ctapipe_on_its_own_dl1(tmp_path):
    """The dl1-stereo stage on a small stereo simulation: pandas reads both stereo DL1 files,
    ctapipe's read_table the HillasReconstructor tables, and ctapipe's HillasReconstructor on the
    DL1 Hillas parameters gives the stage's columns (telescopes at our array positions)."""
    import pandas as pd
    from ctapipe.io import read_table

    config = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    (tmp_path / "mc.json").write_text(json.dumps(config))
    recipe = {"name": "st", "config": "mc.json", "steps": [
        {"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 300, "seed": 4, "stereo": True,
                                                        "energy_min_tev": 2.0, "max_impact_m": 200}},
        {"name": "d1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1_tel_001"}},
        {"name": "d2", "stage": "r0-dl1", "params": {"tel_id": 2}, "inputs": {"r1": "sim.r1_tel_002"}},
        {"name": "stereo", "stage": "dl1-stereo", "inputs": {"tel1": "d1.dl1", "tel2": "d2.dl1"}}]}
    (tmp_path / "st.json").write_text(json.dumps(recipe))
    r = subprocess.run([BIN, "--store", str(tmp_path / "store"), "run", str(tmp_path / "st.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    view = tmp_path / "store" / "views" / "st" / "stereo" / "all"
    p1 = pd.read_hdf(view / "dl1_tel1.h5", "/dl1/event/telescope/parameters/tel_001")
    p2 = pd.read_hdf(view / "dl1_tel2.h5", "/dl1/event/telescope/parameters/tel_002")
    assert list(p1.event_id) == list(p2.event_id) and len(p1) > 20
    geometry = read_table(view / "dl1_tel1.h5", "/dl2/event/subarray/geometry/HillasReconstructor")
    assert geometry["HillasReconstructor_h_max"].unit == u.m and geometry["HillasReconstructor_alt"].unit == u.deg
    assert geometry["HillasReconstructor_is_valid"].dtype == bool
    impact = read_table(view / "dl1_tel2.h5", "/dl2/event/telescope/impact/HillasReconstructor/tel_002")
    assert np.allclose(impact["HillasReconstructor_tel_impact_distance"], p2.HillasReconstructor_tel_impact_distance,
                       equal_nan=True)

    cam = json.loads(subprocess.run([BIN, "--json", "camera"], capture_output=True, text=True, check=True).stdout)
    positions = {1: cam["telescopes"][0]["position_m"], 2: cam["telescopes"][1]["position_m"]}
    global POSITIONS
    saved, POSITIONS = POSITIONS, positions
    try:
        subarray = sst1m_subarray()
    finally:
        POSITIONS = saved
    subarray.reference_location = EarthLocation(lon=14.782924 * u.deg, lat=49.9118 * u.deg, height=510 * u.m)
    from traitlets.config import Config
    # The quality query of the sst1mpipe config, as ctapipe's ShowerProcessor would pass it.
    reco = HillasReconstructor(subarray, config=Config(
        {"HillasReconstructor": config["ShowerProcessor"]["HillasReconstructor"]}))
    compared = 0
    for (_, a), (_, b) in zip(p1.iterrows(), p2.iterrows()):
        if not np.isfinite(a.HillasReconstructor_h_max):
            continue
        event = {"array_pointing": [np.radians(a.true_alt_tel), np.radians(a.true_az_tel)], "images": [
            {"tel_id": t, "pointing": [np.radians(row.true_alt_tel), np.radians(row.true_az_tel)],
             "x": row.camera_frame_hillas_x, "y": row.camera_frame_hillas_y,
             "psi": np.radians(row.camera_frame_hillas_psi), "intensity": row.camera_frame_hillas_intensity,
             "length": row.camera_frame_hillas_length, "width": row.camera_frame_hillas_width}
            for t, row in [(1, a), (2, b)]]}
        ref = ctapipe_reconstruct(subarray, reco, event)
        assert ref is not None
        assert abs(np.degrees(ref["alt"]) - a.HillasReconstructor_alt) < 1e-7
        assert abs(np.angle(np.exp(1j * (ref["az"] - np.radians(a.HillasReconstructor_az))))) < 1e-9
        assert np.isclose(ref["h_max"], a.HillasReconstructor_h_max, rtol=1e-6)
        assert np.isclose(ref["core_x"], a.HillasReconstructor_core_x, rtol=1e-6, atol=1e-6)
        assert np.isclose(ref["impact"]["1"], a.HillasReconstructor_tel_impact_distance, rtol=1e-6)
        assert np.isclose(ref["impact"]["2"], b.HillasReconstructor_tel_impact_distance, rtol=1e-6)
        compared += 1
    assert compared > 20
