"""Stereo DL2 (`dl2-stereo`) against sst1mpipe's `stereo_reconstruction`, re-done here with
pandas on our two per-telescope DL2 files the way sst1mpipe's code does it: the energy and
gammaness averages weighted by `stereo_reco_weights` with pandas' variances (ddof 1) and the
weighted variances, each telescope's two candidate directions (disp sign ±) through ctapipe's
CameraFrame, astropy's angular separation for the four sign pairs, pandas' idxmin and the
weighted direction. Required: every combined column equal to 1e-9 (directions to 1e-6 deg),
the table read by pandas and ctapipe's read_table, sst1mpipe's column names and order.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow")))
STEREO = "/dl2/event/telescope/parameters/stereo"


def sim(name, particle, n, seed, viewcone):
    return {"name": name, "stage": "simulate", "params": {
        "particle": particle, "n_events": n, "seed": seed, "stereo": True, "viewcone_deg": viewcone,
        "energy_min_tev": 1.0, "energy_max_tev": 60 if particle == "gamma" else 100, "max_impact_m": 250}}


@pytest.fixture(scope="module")
def stereo_dl2(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stereo_dl2")
    cfg = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    for section in ["random_forest_regressor_args", "random_forest_classifier_args"]:
        cfg[section]["n_estimators"] = 10
    (tmp / "mc.json").write_text(json.dumps(cfg))
    steps = [sim("sim-g", "gamma", 700, 9, 2.0), sim("sim-p", "proton", 900, 10, 3.0)]
    for s in ["g", "p"]:
        steps += [
            {"name": f"dl1-1{s}", "stage": "r0-dl1", "inputs": {"r1": f"sim-{s}.r1_tel_001"}},
            {"name": f"dl1-2{s}", "stage": "r0-dl1", "params": {"tel_id": 2}, "inputs": {"r1": f"sim-{s}.r1_tel_002"}},
            {"name": f"stereo-{s}", "stage": "dl1-stereo", "inputs": {"tel1": f"dl1-1{s}.dl1", "tel2": f"dl1-2{s}.dl1"}},
        ]
    for t in [1, 2]:
        steps.append({"name": f"train-{t}", "stage": "train-rfs", "params": {"tel_id": t},
                      "inputs": {"gamma": f"stereo-g.dl1_tel{t}", "proton": f"stereo-p.dl1_tel{t}"}})
        steps.append({"name": f"dl2-{t}", "stage": "dl1-dl2", "inputs": {
            "dl1": f"stereo-g.dl1_tel{t}", "energy": f"train-{t}.energy", "disp_norm": f"train-{t}.disp_norm",
            "disp_sign": f"train-{t}.disp_sign", "gh": f"train-{t}.gh"}})
    steps.append({"name": "combined", "stage": "dl2-stereo", "inputs": {"tel1": "dl2-1.dl2", "tel2": "dl2-2.dl2"}})
    (tmp / "r.json").write_text(json.dumps({"name": "st", "config": "mc.json", "steps": steps}))
    store = tmp / "store"
    r = subprocess.run([BIN, "--store", str(store), "-q", "run", "-j", "2", str(tmp / "r.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    views = store / "views" / "st"
    key = "/dl2/event/telescope/parameters/tel_{:03d}"
    return (pd.read_hdf(views / "dl2-1" / "all" / "dl2.h5", key=key.format(1)),
            pd.read_hdf(views / "dl2-2" / "all" / "dl2.h5", key=key.format(2)),
            views / "combined" / "all" / "dl2_stereo.h5")


def sst1mpipe_directions(params):
    """Both signs' alt/az per telescope row, as sst1mpipe's stereo_reconstruction (ctapipe frames)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from ctapipe.coordinates import CameraFrame

    psi = np.radians(params["camera_frame_hillas_psi"].to_numpy())
    out = {}
    for sign, name in [(1.0, "p"), (-1.0, "m")]:
        x = params["camera_frame_hillas_x"].to_numpy() + params["reco_disp_norm"].to_numpy() * sign * np.cos(psi)
        y = params["camera_frame_hillas_y"].to_numpy() + params["reco_disp_norm"].to_numpy() * sign * np.sin(psi)
        pointing = SkyCoord(alt=params["true_alt_tel"].to_numpy() * u.deg, az=params["true_az_tel"].to_numpy() * u.deg,
                            frame=AltAz())
        frame = CameraFrame(focal_length=params["equivalent_focal_length"].to_numpy() * u.m, telescope_pointing=pointing)
        sky = SkyCoord(x=x * u.m, y=y * u.m, frame=frame).transform_to(AltAz())
        az = sky.az.deg
        # sst1mpipe: azimuths wrapped to (-180, 180] when the telescope points within 90 deg of north.
        first = params["true_az_tel"].iloc[0]
        if abs(first - 360 if first > 180 else first) <= 90:
            az = (az + 180) % 360 - 180
        out[name] = (sky.alt.deg, az)
    return out


def test_stereo_dl2_is_sst1mpipes_stereo_reconstruction(stereo_dl2):
    from astropy.coordinates import angular_separation
    from ctapipe.io import read_table

    t1, t2, path = stereo_dl2
    ours = pd.read_hdf(path, key=STEREO)
    assert len(ours) >= 40, len(ours)
    assert list(ours.columns[:7]) == ["obs_id", "event_id", "true_az_tel", "true_alt_tel", "HillasReconstructor_core_x",
                                      "HillasReconstructor_core_y", "HillasReconstructor_h_max"]
    assert list(ours.columns[-6:]) == ["min_distance", "best_sign_combination", "reco_alt", "reco_az", "reco_ra",
                                       "reco_dec"]
    for column in ["var_reco_energy", "wvar_gammaness", "HillasReconstructor_tel_impact_distance_tel2",
                   "camera_frame_hillas_intensity_tel1", "camera_frame_timing_slope_tel2", "true_energy"]:
        assert column in ours.columns, column
    table = read_table(str(path), STEREO)
    assert len(table) == len(ours) and str(table["reco_alt"].unit) == "deg"

    # sst1mpipe drops an event unless both telescopes' features were finite (load with check_finite).
    both = t1["reco_disp_norm"].notna().to_numpy() & t2["reco_disp_norm"].notna().to_numpy()
    t1, t2 = t1[both].reset_index(drop=True), t2[both].reset_index(drop=True)
    assert list(ours["event_id"]) == list(t1["event_id"])
    params = pd.concat([t1, t2], ignore_index=True)
    weights = params["camera_frame_hillas_intensity"]
    for column, source in [("log_reco_energy", "log_reco_energy"), ("gammaness", "gammaness")]:
        df = pd.DataFrame({"obs_id": params["obs_id"], "event_id": params["event_id"], "weight": weights,
                           "param": params[source], "weighted_param": params[source] * weights})
        sums = df.groupby(["obs_id", "event_id"]).sum()
        average = sums["weighted_param"] / sums["weight"]
        variance = df.groupby(["obs_id", "event_id"]).var()["param"]
        df = df.join(average.rename("mean_weighted"), on=["obs_id", "event_id"])
        df["squared_diff"] = df["weight"] * (df["param"] - df["mean_weighted"]) ** 2
        wvariance = df.groupby(["obs_id", "event_id"])["squared_diff"].sum() / sums["weight"]
        if column == "log_reco_energy":
            jacobian = (np.log(10) * 10 ** average.to_numpy()) ** 2
            expected = {"log_reco_energy": average.to_numpy(), "reco_energy": 10 ** average.to_numpy(),
                        "var_reco_energy": jacobian * variance.to_numpy(), "wvar_reco_energy": jacobian * wvariance.to_numpy()}
        else:
            expected = {"gammaness": average.to_numpy(), "var_gammaness": variance.to_numpy(),
                        "wvar_gammaness": wvariance.to_numpy()}
        for name, values in expected.items():
            assert np.allclose(ours[name], values, rtol=1e-9, atol=1e-12), name

    d1, d2 = sst1mpipe_directions(t1), sst1mpipe_directions(t2)
    distance = pd.DataFrame({
        combo: angular_separation(np.radians(d1[combo[0]][1]), np.radians(d1[combo[0]][0]),
                                  np.radians(d2[combo[1]][1]), np.radians(d2[combo[1]][0]))
        for combo in ["pp", "mm", "mp", "pm"]})
    best = distance.idxmin(axis=1)
    agree = (ours["best_sign_combination"].str.decode("ascii") if ours["best_sign_combination"].dtype == object
             and isinstance(ours["best_sign_combination"].iloc[0], bytes) else ours["best_sign_combination"]) == best
    # A near tie between two sign pairs may fall either way at rounding level; there are none here.
    assert agree.all(), ours[~agree][["event_id"]]
    assert np.allclose(ours["min_distance"], distance.min(axis=1), rtol=1e-6, atol=1e-9)
    w1, w2 = t1["camera_frame_hillas_intensity"].to_numpy(), t2["camera_frame_hillas_intensity"].to_numpy()
    for k, coord in enumerate(["reco_alt", "reco_az"]):
        a = np.choose([["pp", "mm", "mp", "pm"].index(b) for b in best],
                      [d1["p"][k], d1["m"][k], d1["m"][k], d1["p"][k]])
        b = np.choose([["pp", "mm", "mp", "pm"].index(b) for b in best],
                      [d2["p"][k], d2["m"][k], d2["p"][k], d2["m"][k]])
        assert np.allclose(ours[coord], (a * w1 + b * w2) / (w1 + w2), rtol=0, atol=1e-6), coord
    # The per-event means and each telescope's columns.
    assert np.allclose(ours["true_energy"], t1["true_energy"], rtol=1e-12)
    assert np.allclose(ours["HillasReconstructor_tel_impact_distance_tel2"], t2["HillasReconstructor_tel_impact_distance"])
    assert np.allclose(ours["camera_frame_hillas_width_tel2"], t2["camera_frame_hillas_width"])
    # The stereo reconstruction beats each telescope alone on the energy spread of bright events.
    bright = ours["camera_frame_hillas_intensity_tel1"] > 200
    resolution = lambda reco, true: np.std(np.log10(reco / true))  # noqa: E731
    print(f"stereo events {len(ours)}; log10 E spread: stereo {resolution(ours['reco_energy'][bright], ours['true_energy'][bright]):.3f}, "
          f"tel 1 {resolution(t1['reco_energy'][bright], t1['true_energy'][bright]):.3f}")
