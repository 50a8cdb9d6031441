"""Reference DL1 computed with ctapipe 0.17.0, the version sst1mpipe pins.

Run with the Python of the ctapipe-0.17 virtualenv (scripts/setup.sh makes .venv-ctapipe017),
not imported by pytest: test_dl1_vs_ctapipe017.py calls it and compares its output with our
DL1 files. It does what sst1mpipe's r0→dl1 does with ctapipe's own classes and functions:

  mc SIMTEL CONFIG OUT.json      SimTelEventSource + CameraCalibrator (LocalPeakWindowSum with the
                                config's window and integration correction) + sst1mpipe's
                                ImageCleanerSST_MC cleaning (tailcuts, then time-delta cleaning,
                                the first telescope_defaults entry) + ImageProcessor's parameters
  params DL1 SUBARRAY TEL OUT.json  ImageProcessor's parameters of the images, peak times and masks
                                of a DL1 file, on the camera geometry of a SubarrayDescription file
  correction SUBARRAY OUT.json   ctapipe's integration correction of each telescope's pulse
  events DL1 OUT.json [FOCAL]    what ctapipe 0.17's HDF5EventSource (sst1mpipe's stereo matcher
                                reads DL1 with it) gives for each event of a DL1 file (FOCAL:
                                its focal_length_choice, EFFECTIVE by default)
  table DL1 PATH OUT.json        ctapipe 0.17's read_table of one table (as sst1mpipe's
                                get_dl1_info and load_dl1_pedestals read theirs): columns, rows
  simtables SIMTEL OUT.h5        ctapipe 0.17's DataWriter on a sim_telarray file, with the
                                simulation histograms ctapipe-process writes at the end (what
                                sst1mpipe's get_mc_info reads: /configuration/simulation/run and
                                /simulation/service/shower_distribution)
  reclean DL1 HIST SUBARRAY TEL CONFIG OUT.json
                                sst1mpipe's --reclean on the images and peak times of a DL1 file:
                                the charge maps of HIST read as its read_charge_images reads them,
                                filtered by min_number_pedestals, each event's map chosen by its
                                trigger time (add_trigger_time's unix_tai Time) as r0_dl1's
                                reversed scan chooses it, then ImageCleanerSST's cleaning
  datacalib NPZ WINDOW SUBARRAY CONFIG OUT.json
                                sst1mpipe's R0->R1->DL1a chain for camera data on the raw events of
                                NPZ (protozfits' decoding, pixel-sorted, and the calibration table's
                                dc_to_pe and calib_flag read by pandas, written by the test):
                                dc_to_pe from the calibration table (bad calib_flag pixels get the
                                mean), the global voltage drop of the sliding pedestal buffer, the
                                bad and dead pixels zeroed and interpolated by NeighborAverage,
                                ctapipe 0.17's LocalPeakWindowSum with its integration correction,
                                the saturation re-integration and the window transmittance
  merge DIR OUT.h5              sst1mpipe_merge_hdf5 (ctapipe 0.17's MergeTool with its options:
                                --skip-images, every *.h5 of DIR)
  rewrite MC_DL1 OUT.h5         ctapipe 0.17's DataWriter writing the parameters, pointing and
                                Monte Carlo truth of one of our Monte Carlo DL1 files as
                                ctapipe-process writes camera-frame DL1 (a foreign DL1 of the
                                same showers: sst1mpipe's DL1 is this writer's output)
"""
import json
import sys

import astropy.units as u
import numpy as np
import tables
from ctapipe.image import (
    apply_time_delta_cleaning,
    concentration_parameters,
    descriptive_statistics,
    hillas_parameters,
    leakage_parameters,
    morphology_parameters,
    tailcuts_clean,
    timing_parameters,
)
from ctapipe.instrument import SubarrayDescription

PARAMETER_COLUMNS = {
    "camera_frame_hillas_intensity": ("hillas", "intensity", None),
    "camera_frame_hillas_x": ("hillas", "x", u.m),
    "camera_frame_hillas_y": ("hillas", "y", u.m),
    "camera_frame_hillas_r": ("hillas", "r", u.m),
    "camera_frame_hillas_phi": ("hillas", "phi", u.deg),
    "camera_frame_hillas_length": ("hillas", "length", u.m),
    "camera_frame_hillas_length_uncertainty": ("hillas", "length_uncertainty", u.m),
    "camera_frame_hillas_width": ("hillas", "width", u.m),
    "camera_frame_hillas_width_uncertainty": ("hillas", "width_uncertainty", u.m),
    "camera_frame_hillas_psi": ("hillas", "psi", u.deg),
    "camera_frame_hillas_skewness": ("hillas", "skewness", None),
    "camera_frame_hillas_kurtosis": ("hillas", "kurtosis", None),
    "camera_frame_timing_slope": ("timing", "slope", 1 / u.m),
    "camera_frame_timing_intercept": ("timing", "intercept", None),
    "camera_frame_timing_deviation": ("timing", "deviation", None),
    "leakage_pixels_width_1": ("leakage", "pixels_width_1", None),
    "leakage_pixels_width_2": ("leakage", "pixels_width_2", None),
    "leakage_intensity_width_1": ("leakage", "intensity_width_1", None),
    "leakage_intensity_width_2": ("leakage", "intensity_width_2", None),
    "concentration_cog": ("concentration", "cog", None),
    "concentration_core": ("concentration", "core", None),
    "concentration_pixel": ("concentration", "pixel", None),
    "morphology_n_pixels": ("morphology", "n_pixels", None),
    "morphology_n_islands": ("morphology", "n_islands", None),
    "morphology_n_small_islands": ("morphology", "n_small_islands", None),
    "morphology_n_medium_islands": ("morphology", "n_medium_islands", None),
    "morphology_n_large_islands": ("morphology", "n_large_islands", None),
    "intensity_max": ("intensity_statistics", "max", None),
    "intensity_min": ("intensity_statistics", "min", None),
    "intensity_mean": ("intensity_statistics", "mean", None),
    "intensity_std": ("intensity_statistics", "std", None),
    "intensity_skewness": ("intensity_statistics", "skewness", None),
    "intensity_kurtosis": ("intensity_statistics", "kurtosis", None),
    "peak_time_max": ("peak_time_statistics", "max", None),
    "peak_time_min": ("peak_time_statistics", "min", None),
    "peak_time_mean": ("peak_time_statistics", "mean", None),
    "peak_time_std": ("peak_time_statistics", "std", None),
    "peak_time_skewness": ("peak_time_statistics", "skewness", None),
    "peak_time_kurtosis": ("peak_time_statistics", "kurtosis", None),
}


def parameters(geom, image, peak_time, mask):
    """ImageProcessor._parameterize_image of ctapipe 0.17 (camera frame), as a flat dict."""
    selected = image[mask]
    if not (selected.sum() > 0):
        return None
    geom_selected = geom[mask]
    groups = {"hillas": hillas_parameters(geom=geom_selected, image=selected)}
    groups["leakage"] = leakage_parameters(geom=geom, image=image, cleaning_mask=mask)
    groups["concentration"] = concentration_parameters(geom=geom_selected, image=selected,
                                                       hillas_parameters=groups["hillas"])
    groups["morphology"] = morphology_parameters(geom=geom, image_mask=mask)
    groups["intensity_statistics"] = descriptive_statistics(selected)
    groups["timing"] = timing_parameters(geom=geom_selected, image=selected, peak_time=peak_time[mask],
                                         hillas_parameters=groups["hillas"])
    groups["peak_time_statistics"] = descriptive_statistics(peak_time[mask])
    out = {}
    for column, (group, field, unit) in PARAMETER_COLUMNS.items():
        value = getattr(groups[group], field)
        out[column] = float(value.to_value(unit) if unit is not None else u.Quantity(value).value)
    return out


def true_parameters(geom, true_image):
    """ImageProcessor's parameters of a simulated image (signal: pixels with light; no timing)."""
    p = parameters(geom, true_image, np.zeros(len(true_image)), true_image > 0)
    if p is None:
        return None
    return {k: v for k, v in p.items() if not k.startswith(("camera_frame_timing", "peak_time"))}


def mc(simtel, config_path, out):
    from ctapipe.calib import CameraCalibrator
    from ctapipe.io import SimTelEventSource
    from traitlets.config import Config

    cfg = json.load(open(config_path))
    window = cfg["CameraCalibrator"]["LocalPeakWindowSum"]
    config = Config({"LocalPeakWindowSum": dict(window)})
    source = SimTelEventSource(simtel, focal_length_choice="EQUIVALENT", config=config)
    calibrator = CameraCalibrator(subarray=source.subarray, image_extractor_type="LocalPeakWindowSum", config=config)
    events = {}
    for event in source:
        calibrator(event)
        for tel_id, dl1 in event.dl1.tel.items():
            geom = source.subarray.tel[tel_id].camera.geometry
            setting = cfg["ImageProcessor"]["ImageCleanerSST"]["telescope_defaults"][f"tel_{tel_id:03d}"][0]
            mask = tailcuts_clean(geom, dl1.image, picture_thresh=setting["picture_threshold_pe"],
                                  boundary_thresh=setting["boundary_threshold_pe"],
                                  min_number_picture_neighbors=setting["min_picture_neighbors"],
                                  keep_isolated_pixels=setting["keep_isolated"])
            mask = apply_time_delta_cleaning(geom, mask, dl1.peak_time,
                                             min_number_neighbors=setting["min_time_neighbors"],
                                             time_limit=setting["time_limit_ns"])
            true_image = event.simulation.tel[tel_id].true_image
            shower = event.simulation.shower
            events[f"{tel_id}/{event.index.event_id}"] = {
                "image": dl1.image.tolist(), "peak_time": dl1.peak_time.tolist(), "mask": mask.tolist(),
                "is_valid": bool(dl1.is_valid),
                # sst1mpipe's extra Monte Carlo columns, from ctapipe's event.
                "true_h_first_int": float(shower.h_first_int.to_value(u.m)),
                "true_x_max": float(shower.x_max.to_value(u.g / u.cm**2)),
                "survived_charge_fraction": float(true_image[mask].sum() / true_image.sum()),
                "equivalent_focal_length": float(
                    source.subarray.tel[tel_id].optics.equivalent_focal_length.to_value(u.m)),
                "params": parameters(geom, dl1.image, dl1.peak_time, mask),
                # ImageProcessor's true parameters: the true image's pixels with light, no timing.
                "true_params": true_parameters(geom, true_image),
            }
    json.dump(events, open(out, "w"))


def params(dl1, subarray, tel_id, out):
    geom = SubarrayDescription.from_hdf(subarray).tel[int(tel_id)].camera.geometry
    with tables.open_file(dl1) as f:
        images = f.get_node(f"/dl1/event/telescope/images/tel_{int(tel_id):03d}").read()
    events = {}
    for row in images:
        image, peak_time, mask = row["image"], row["peak_time"], row["image_mask"].astype(bool)
        events[str(int(row["event_id"]))] = parameters(geom, image, peak_time, mask)
    json.dump(events, open(out, "w"))


def correction(subarray, out):
    from ctapipe.image.extractor import integration_correction

    s = SubarrayDescription.from_hdf(subarray)
    result = {}
    for tel_id, tel in s.tel.items():
        readout = tel.camera.readout
        result[str(tel_id)] = float(integration_correction(
            readout.reference_pulse_shape, readout.reference_pulse_sample_width.to_value(u.ns),
            (1 / readout.sampling_rate).to_value(u.ns), 7, 3)[0])
    json.dump(result, open(out, "w"))


def events(dl1, *rest):
    *focal, out = rest
    focal_length_choice = focal[0] if focal else "EFFECTIVE"
    import warnings

    from ctapipe.io import EventSource, HDF5EventSource

    warnings.simplefilter("ignore")
    result = {"compatible": HDF5EventSource.is_compatible(dl1), "events": []}
    with EventSource(dl1, focal_length_choice=focal_length_choice) as source:
        result["class"] = type(source).__name__
        result["obs_ids"] = [int(o) for o in source.obs_ids]
        result["is_simulation"] = bool(source.is_simulation)
        result["scheduling_blocks"] = sorted(int(k) for k in source.scheduling_blocks)
        result["observation_blocks"] = {
            str(k): {"lat_deg": float(ob.subarray_pointing_lat.to_value("deg")),
                     "lon_deg": float(ob.subarray_pointing_lon.to_value("deg")),
                     "frame": int(ob.subarray_pointing_frame.value if hasattr(ob.subarray_pointing_frame, "value")
                                  else ob.subarray_pointing_frame)}
            for k, ob in source.observation_blocks.items()}
        for event in source:
            tel_id = next(iter(event.dl1.tel))
            result["events"].append({
                "obs_id": int(event.index.obs_id), "event_id": int(event.index.event_id), "tel_id": int(tel_id),
                "time_mjd": float(event.trigger.time.tai.mjd),
                "array_alt_rad": float(event.pointing.array_altitude.to_value("rad")),
                "array_az_rad": float(event.pointing.array_azimuth.to_value("rad")),
                "tel_alt_rad": float(event.pointing.tel[tel_id].altitude.to_value("rad")),
                "tel_az_rad": float(event.pointing.tel[tel_id].azimuth.to_value("rad")),
                "intensity": float(event.dl1.tel[tel_id].parameters.hillas.intensity),
                "image_sum": float(np.sum(event.dl1.tel[tel_id].image)),
            })
    with open(out, "w") as f:
        json.dump(result, f)


def table(dl1, path, out):
    from ctapipe.io import read_table

    t = read_table(dl1, path)
    rows = [{c: (v.decode() if isinstance(v, bytes) else v.tolist() if hasattr(v, "tolist") else v)
             for c, v in zip(t.colnames, row)} for row in t.as_array()]
    with open(out, "w") as f:
        json.dump({"columns": t.colnames, "rows": rows}, f)


def simtables(simtel, out):
    from ctapipe.io import DataWriter, SimTelEventSource

    source = SimTelEventSource(simtel, focal_length_choice="EQUIVALENT")
    with DataWriter(event_source=source, output_path=out, overwrite=True, write_parameters=True,
                    write_images=False) as writer:
        for event in source:
            writer(event)
        writer.write_simulation_histograms(source)


def reclean(dl1, hist, subarray, tel_id, config, out):
    from astropy.io.misc.hdf5 import read_table_hdf5
    from astropy.time import Time

    tel_id = int(tel_id)
    geom = SubarrayDescription.from_hdf(subarray).tel[tel_id].camera.geometry
    cfg = json.load(open(config))["ImageProcessor"]["ImageCleanerSST"]
    settings = sorted(cfg["telescope_defaults"][f"tel_{tel_id:03d}"], key=lambda x: x["min_nsb_level"], reverse=True)
    # sst1mpipe's read_charge_images and the filter of its --reclean branch.
    maps = read_table_hdf5(hist, path="charge_images")
    maps["start_time"] = np.array(maps["start_time"], dtype="datetime64[ns]")
    maps = maps[maps["n"] > cfg["min_number_pedestals"]]
    maps["mean_charge"] = np.average(maps["average_q"], axis=1)
    with tables.open_file(dl1) as f:
        images = f.get_node(f"/dl1/event/telescope/images/tel_{tel_id:03d}").read()
        params = f.get_node(f"/dl1/event/telescope/parameters/tel_{tel_id:03d}").read()
    times = {int(p["event_id"]): (int(p["time_wr_full_seconds"]), float(p["time_wr_frac_seconds"])) for p in params}
    result = {}
    for row in images:
        event_id = int(row["event_id"])
        time = Time(*times[event_id], format="unix_tai")
        selected = maps[-1]
        for entry in reversed(maps):
            if time >= entry[0]:
                selected = entry
                break
        _, _, q_ped, sig_q_ped, mean_q = selected
        for setting in settings:
            if mean_q >= setting["min_nsb_level"]:
                break
        pic_thr = np.maximum(setting["picture_threshold_pe"], q_ped + setting["stdev_scaling"] * sig_q_ped)
        mask = tailcuts_clean(geom, row["image"], picture_thresh=pic_thr,
                              boundary_thresh=setting["boundary_threshold_pe"],
                              min_number_picture_neighbors=setting["min_picture_neighbors"],
                              keep_isolated_pixels=setting["keep_isolated"])
        mask = apply_time_delta_cleaning(geom, mask, row["peak_time"], setting["min_time_neighbors"],
                                         setting["time_limit_ns"])
        result[str(event_id)] = {"mask": np.flatnonzero(mask).tolist(), "meanQ": float(mean_q),
                                 "min_nsb_level": setting["min_nsb_level"],
                                 "raised": int(np.sum(pic_thr > setting["picture_threshold_pe"]))}
    json.dump(result, open(out, "w"))


# sst1mpipe's voltage-drop model (NSB_tools.py): the baseline shift as a B-spline of the
# pedestal variance (ADC^2), tel 21 quadratic, tel 22 linear, and the gain and PDE slopes.
VDROP_SPLINES = {
    21: ([0.0, 0.0, 0.0, 46.96969697, 60.90909091, 67.57575758, 74.24242424, 74.24242424, 74.24242424],
         [-0.4367913, 9.08788226, 39.66927065, 54.18389959, 69.24518367, 104.29418015, 0.0, 0.0, 0.0], 2),
    22: ([0.0, 0.0, 93.74735497, 126.46232902, 181.54405469, 256.80398702, 266.62290877, 292.98812266,
          294.71402901, 295.67072519, 298.04051867, 339.91032956, 339.91032956],
         [-1.74764142, 48.41280122, 68.36843193, 104.62272377, 168.14318275, 179.34289593, 212.07400565,
          214.10474285, 215.17017626, 217.7828114, 268.19128994, 0.0, 0.0], 1),
}
VDROP_SLOPES = {21: -0.00487 - 0.00317, 22: -0.00118 - 0.000663}


def datacalib(npz, window, subarray, config, out):
    from collections import deque

    from ctapipe.image.extractor import LocalPeakWindowSum
    from ctapipe.image.invalid_pixels import NeighborAverage
    from scipy import interpolate

    d = np.load(npz)
    samples, baselines, types, numbers = d["samples"], d["baselines"], d["event_type"], d["event_number"]
    tel_id = int(d["tel_id"])
    cfg = json.load(open(config))
    sub = SubarrayDescription.from_hdf(subarray)
    n_pixels = samples.shape[1]
    # The calibration table as sst1mpipe reads it (pandas' read_hdf, in the test's virtualenv).
    dc_to_pe = np.array(d["dc_to_pe"], dtype=np.float64)
    mask_bad_calib = d["calib_flag"] != 1
    dc_to_pe[mask_bad_calib] = dc_to_pe[~mask_bad_calib].mean()
    window_corr = np.loadtxt(window, unpack=True, skiprows=1, usecols=1)
    lpws = cfg["CameraCalibrator"]["LocalPeakWindowSum"]
    extractor = LocalPeakWindowSum(subarray=sub, window_width=lpws["window_width"], window_shift=lpws["window_shift"],
                                   apply_integration_correction=lpws["apply_integration_correction"])
    handler = NeighborAverage(subarray=sub) if cfg["CameraCalibrator"].get("invalid_pixel_handler_type") else None
    nsb, tcal = cfg["NsbCalibrator"], cfg["telescope_calibration"]
    stds = deque()  # the raw-sample std of the last <= 100 pedestal events

    def calibrate(i):
        """sst1mpipe's Calibrator_R0_R1.calibrate, then CameraCalibrator and its corrections."""
        std = np.array(stds).mean(axis=0) if stds else None
        t, c, k = VDROP_SPLINES[tel_id]
        drop = lambda v: interpolate.splev(v, (np.array(t), np.array(c), k)) * VDROP_SLOPES[tel_id] + 1  # noqa: E731
        if std is not None and nsb["apply_pixelwise_Vdrop_correction"]:
            vi = drop(std**2)
        elif std is not None and nsb["apply_global_Vdrop_correction"]:
            vi = drop(np.median(std**2))
        else:
            vi = 1.0
        adc = samples[i].T - baselines[i] / 16
        r1 = (adc / dc_to_pe / vi).T
        bad = np.zeros(n_pixels, dtype=bool)
        if tcal["bad_calib_px_interpolation"]:
            bad = mask_bad_calib.copy()
            if std is not None and tcal["dynamic_dead_px_interpolation"]:
                bad |= std < 2.5
            r1[bad] = 0
        dl1 = extractor(r1, tel_id=tel_id, selected_gain_channel=np.zeros(n_pixels, dtype=np.int8),
                        broken_pixels=bad)
        image, peak_time = dl1.image, dl1.peak_time
        if handler is not None and bad.any():
            image, peak_time = handler(tel_id, image, peak_time, bad)
        # saturated_charge_correction
        w_all = adc.T
        for pix in np.flatnonzero(np.max(adc, axis=0) > 3000):
            w = w_all[pix]
            mask_width = w > 2500
            top = max(w)
            start = np.arange(len(w))[w >= 0.2 * top][0]
            index_max = np.arange(len(w))[w == top][0]
            stop = np.arange(len(w))[(w < 0.2 * top) & (np.arange(len(w)) > index_max)]
            stop = stop[0] if len(stop) else len(w) - 1
            width = sum(mask_width)
            if width > 5:
                image[pix] = sum(r1[pix][start:stop + 1])
                peak_time[pix] = (width / 2 + np.arange(len(w))[mask_width][0]) * 4
        image = (image / window_corr).astype(np.float32)
        return image, peak_time, float(vi), int(bad.sum())

    # sliding_pedestals.load_firsts_pedestals: the raw stats of the first <= 100 pedestal events
    # (of the first 100,000); its second pass calibrates the pedestals (<= 1000 images), each
    # with the raw window of those before it (the first ones replaced by themselves, later ones
    # added), then keeps the first 100 raw entries. Image sums are float64 (its first pass
    # starts them with float64 zero images).
    pedestals = [i for i in range(min(len(types), 100_000)) if types[i] == 8]
    for i in pedestals[:100]:
        stds.append(samples[i].std(axis=1))
    images = deque()
    image_sum, image_sum2 = np.zeros(n_pixels), np.zeros(n_pixels)
    for k, i in enumerate(pedestals[:1000]):
        image = calibrate(i)[0]
        if k >= 100:
            stds.append(samples[i].std(axis=1))
        images.append(image)
        image_sum += image
        image_sum2 += image.astype(np.float64) ** 2
    while len(stds) > 100:
        stds.pop()
    ics = cfg["ImageProcessor"]["ImageCleanerSST"]
    settings = sorted(ics["telescope_defaults"][f"tel_{tel_id:03d}"], key=lambda x: x["min_nsb_level"], reverse=True)
    nsb_level = np.mean(image_sum / len(images)) if images else 0.0
    for setting in settings:
        if nsb_level >= setting["min_nsb_level"]:
            break
    geom = sub.tel[tel_id].camera.geometry
    result = {}
    for i in range(len(types)):
        image, peak_time, vi, n_bad = calibrate(i)
        # ImageCleanerSST with the pedestal images' mean and std before this event.
        mean = image_sum / len(images)
        std = np.sqrt(image_sum2 / len(images) - mean**2)
        pic_thr = np.maximum(setting["picture_threshold_pe"], mean + setting["stdev_scaling"] * std)
        mask = tailcuts_clean(geom, image, picture_thresh=pic_thr, boundary_thresh=setting["boundary_threshold_pe"],
                              min_number_picture_neighbors=setting["min_picture_neighbors"],
                              keep_isolated_pixels=setting["keep_isolated"])
        mask = apply_time_delta_cleaning(geom, mask, peak_time, setting["min_time_neighbors"], setting["time_limit_ns"])
        if types[i] == 8:
            stds.append(samples[i].std(axis=1))
            if len(stds) > 100:
                stds.popleft()
            images.append(image)
            image_sum += image
            image_sum2 += image.astype(np.float64) ** 2
            if len(images) > 1000:
                old = images.popleft()
                image_sum -= old
                image_sum2 -= old.astype(np.float64) ** 2
            continue
        result[str(int(numbers[i]))] = {"image": image.tolist(), "peak_time": np.asarray(peak_time).tolist(),
                                        "mask": np.flatnonzero(mask).tolist(), "voltage_drop": vi, "n_bad": n_bad,
                                        "nsb_level": float(nsb_level)}
    json.dump(result, open(out, "w"))


def merge(directory, out):
    import pathlib

    from ctapipe.tools.merge import MergeTool

    tool = MergeTool(input_dir=pathlib.Path(directory), output_path=pathlib.Path(out), skip_broken_files=False,
                     skip_images=True, skip_simu_images=True, overwrite=True, progress_bar=False, file_pattern="*.h5",
                     # beside the output, not in the working directory (the repository's root)
                     provenance_log=pathlib.Path(out).with_suffix(".provenance.log"))
    tool.run(argv=[])


def rewrite(dl1, out):
    import types
    import warnings

    from astropy.time import Time
    from ctapipe.containers import (
        ArrayEventContainer,
        CameraHillasParametersContainer,
        CameraTimingParametersContainer,
        ConcentrationContainer,
        ImageParametersContainer,
        IntensityStatisticsContainer,
        LeakageContainer,
        MorphologyContainer,
        PeakTimeStatisticsContainer,
        SimulatedEventContainer,
        SimulatedShowerContainer,
        SimulationConfigContainer,
    )
    from ctapipe.io import DataWriter

    warnings.simplefilter("ignore")
    subarray = SubarrayDescription.from_hdf(dl1)
    (tel_id,) = subarray.tel.keys()
    with tables.open_file(dl1) as f:
        rows = f.get_node(f"/dl1/event/telescope/parameters/tel_{tel_id:03d}").read()
        run = f.root.configuration.simulation.run.read()[0]
    obs_id = int(rows["obs_id"][0])
    config = SimulationConfigContainer(
        n_showers=int(run["n_showers"]), shower_reuse=int(run["shower_reuse"]),
        energy_range_min=run["energy_range_min"] * u.TeV, energy_range_max=run["energy_range_max"] * u.TeV,
        spectral_index=float(run["spectral_index"]), min_scatter_range=run["min_scatter_range"] * u.m,
        max_scatter_range=run["max_scatter_range"] * u.m, min_viewcone_radius=run["min_viewcone_radius"] * u.deg,
        max_viewcone_radius=run["max_viewcone_radius"] * u.deg)
    source = types.SimpleNamespace(is_simulation=True, subarray=subarray, obs_ids=[obs_id], scheduling_blocks={},
                                   observation_blocks={}, simulation_config={obs_id: config})

    def group(container, prefix, fields, units=None):
        units = units or {}
        return container(**{k: r[f"{prefix}_{k}"] * units.get(k, 1) for k in fields})

    with DataWriter(event_source=source, output_path=out, overwrite=True, write_parameters=True,
                    write_images=False) as writer:
        for r in rows:
            event = ArrayEventContainer()
            event.index.obs_id, event.index.event_id = obs_id, int(r["event_id"])
            event.trigger.time = Time(59000.0, format="mjd", scale="tai")
            event.trigger.tels_with_trigger = [tel_id]
            alt, az = r["true_alt_tel"] * u.deg, r["true_az_tel"] * u.deg
            event.pointing.array_altitude, event.pointing.array_azimuth = alt, az
            event.pointing.tel[tel_id].altitude, event.pointing.tel[tel_id].azimuth = alt, az
            event.simulation = SimulatedEventContainer()
            event.simulation.shower = SimulatedShowerContainer(
                energy=r["true_energy"] * u.TeV, alt=r["true_alt"] * u.deg, az=r["true_az"] * u.deg,
                core_x=r["true_core_x"] * u.m, core_y=r["true_core_y"] * u.m,
                h_first_int=r["true_h_first_int"] * u.m, x_max=r["true_x_max"] * u.g / u.cm**2,
                shower_primary_id=int(r["true_shower_primary_id"]))
            m = u.m
            event.dl1.tel[tel_id].parameters = ImageParametersContainer(
                hillas=group(CameraHillasParametersContainer, "camera_frame_hillas",
                             ["intensity", "x", "y", "r", "phi", "length", "length_uncertainty", "width",
                              "width_uncertainty", "psi", "skewness", "kurtosis"],
                             {"x": m, "y": m, "r": m, "phi": u.deg, "length": m, "length_uncertainty": m,
                              "width": m, "width_uncertainty": m, "psi": u.deg}),
                timing=group(CameraTimingParametersContainer, "camera_frame_timing", ["slope", "intercept", "deviation"],
                             {"slope": 1 / m}),
                leakage=group(LeakageContainer, "leakage", ["pixels_width_1", "pixels_width_2",
                                                            "intensity_width_1", "intensity_width_2"]),
                concentration=group(ConcentrationContainer, "concentration", ["cog", "core", "pixel"]),
                morphology=group(MorphologyContainer, "morphology", ["n_pixels", "n_islands", "n_small_islands",
                                                                     "n_medium_islands", "n_large_islands"]),
                intensity_statistics=group(IntensityStatisticsContainer, "intensity",
                                           ["max", "min", "mean", "std", "skewness", "kurtosis"]),
                peak_time_statistics=group(PeakTimeStatisticsContainer, "peak_time",
                                           ["max", "min", "mean", "std", "skewness", "kurtosis"]))
            writer(event)


if __name__ == "__main__":
    {"mc": mc, "params": params, "correction": correction, "events": events, "table": table,
     "simtables": simtables, "reclean": reclean, "rewrite": rewrite,
     "datacalib": datacalib, "merge": merge}[sys.argv[1]](*sys.argv[2:])
