#!/usr/bin/env python3
"""Analyse the quickstart's DL3 data store with gammapy, as a person would.

1. Loads the data store (``DataStore.from_dir``, no environment variables).
2. 1D reflected-regions spectral analysis of the target (on region 0.2 deg, full-enclosure
   IRFs with containment correction, safe range where the effective area exceeds 10% of its
   maximum), a power-law fit, and flux points.
3. A significance map (ring background) around the target.
4. Checks the fitted index and flux at 1 TeV against the simulated source, read from the
   recipe (within 3 sigma), and a detection above 5 sigma. Exits 1 if any check fails.

Writes a PNG (and prints a short report, or JSON with --json).

Usage: quickstart_analysis.py DATASTORE_DIR RECIPE [--png FILE] [--json]
"""
import argparse
import json
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def simulated_source(recipe_path):
    """(amplitude at 1 TeV in cm-2 s-1 TeV-1, index, ra, dec) of the recipe's observation runs."""
    recipe = json.load(open(recipe_path))
    runs = [s["params"] for s in recipe["steps"] if s["stage"] == "simulate" and s.get("params", {}).get("mode") == "observation"]
    if not runs:
        sys.exit(f"{recipe_path}: no observation-run simulation step")
    p = runs[0]
    for other in runs[1:]:
        for k in ("source_amplitude", "source_index", "target_ra_deg", "target_dec_deg"):
            if other.get(k) != p.get(k):
                sys.exit(f"{recipe_path}: observation runs simulate different sources ({k})")
    return (p.get("source_amplitude", 2.83e-11), p.get("source_index", -2.62),
            p.get("target_ra_deg", 83.6333), p.get("target_dec_deg", 22.0145))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datastore")
    ap.add_argument("recipe")
    ap.add_argument("--png", default="quickstart_analysis.png")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import astropy.units as u
    from astropy.coordinates import Angle, SkyCoord
    from regions import CircleSkyRegion
    from gammapy.data import DataStore
    from gammapy.datasets import Datasets, MapDataset, SpectrumDataset
    from gammapy.estimators import ExcessMapEstimator, FluxPointsEstimator
    from gammapy.makers import (MapDatasetMaker, ReflectedRegionsBackgroundMaker, RingBackgroundMaker,
                                SafeMaskMaker, SpectrumDatasetMaker)
    from gammapy.maps import MapAxis, RegionGeom, WcsGeom
    from gammapy.modeling import Fit
    from gammapy.modeling.models import PowerLawSpectralModel, SkyModel
    from gammapy.stats import WStatCountsStatistic

    amplitude_true, index_true, ra, dec = simulated_source(args.recipe)
    target = SkyCoord(ra, dec, unit="deg", frame="icrs")

    store = DataStore.from_dir(args.datastore)
    observations = store.get_observations(required_irf="full-enclosure")
    livetime = sum(o.observation_live_time_duration.to_value("s") for o in observations)

    # 1D spectrum, reflected regions.
    e_reco = MapAxis.from_energy_bounds(0.3, 100, 12, unit="TeV", name="energy")
    e_true = MapAxis.from_energy_bounds(0.1, 200, 30, unit="TeV", name="energy_true")
    on_region = CircleSkyRegion(center=target, radius=Angle("0.2 deg"))
    empty = SpectrumDataset.create(geom=RegionGeom.create(region=on_region, axes=[e_reco]), energy_axis_true=e_true)
    maker = SpectrumDatasetMaker(selection=["counts", "exposure", "edisp"], containment_correction=True)
    bkg_maker = ReflectedRegionsBackgroundMaker()
    safe = SafeMaskMaker(methods=["aeff-max"], aeff_percent=10)
    spectra = Datasets()
    for obs in observations:
        ds = maker.run(empty.copy(name=f"obs{obs.obs_id}"), obs)
        ds_onoff = bkg_maker.run(ds, obs)
        spectra.append(safe.run(ds_onoff, obs))
    stacked = spectra.stack_reduce(name="stacked")
    info = stacked.info_dict()
    n_on, n_off, alpha = float(info["counts"]), float(info["counts_off"]), float(info["alpha"])
    # Without a single OFF count (stereo's background rejection in minutes of data), stacking
    # leaves alpha undefined (0/0): the observations are then fitted jointly, each with its own
    # OFF regions, and the significance takes their mean alpha.
    joint = not np.isfinite(alpha)
    if joint:
        alpha = float(np.mean([d.alpha.data[d.mask_safe.data].mean() for d in spectra]))
    stat = WStatCountsStatistic(n_on=n_on, n_off=n_off, alpha=alpha)
    significance = float(stat.sqrt_ts)
    excess = float(stat.n_sig)

    model = SkyModel(spectral_model=PowerLawSpectralModel(index=2.5, amplitude="1e-10 cm-2 s-1 TeV-1", reference="1 TeV"),
                     name="source")
    fitted = spectra if joint else Datasets([stacked])
    for d in fitted:
        d.models = [model]
    result = Fit().run(datasets=fitted)
    pl = model.spectral_model
    idx, idx_err = pl.index.value, pl.index.error
    amp, amp_err = pl.amplitude.value, pl.amplitude.error
    safe_mask = stacked.mask_safe.data.squeeze()
    edges = e_reco.edges.to_value("TeV")
    fit_lo = edges[:-1][safe_mask].min() if safe_mask.any() else float("nan")
    fit_hi = edges[1:][safe_mask].max() if safe_mask.any() else float("nan")
    fp = FluxPointsEstimator(energy_edges=e_reco.edges[::2], source="source", selection_optional=[]).run(fitted)

    # Significance map, ring background.
    geom = WcsGeom.create(skydir=target, binsz=0.02, width=(3, 3), frame="icrs", proj="TAN",
                          axes=[MapAxis.from_energy_bounds(0.5, 100, 1, unit="TeV")])
    map_maker = MapDatasetMaker(selection=["counts", "background", "exposure"])
    map_safe = SafeMaskMaker(methods=["offset-max"], offset_max="2 deg")
    stacked_map = MapDataset.create(geom=geom, energy_axis_true=e_true, name="map")
    for obs in observations:
        cutout = stacked_map.cutout(obs.get_pointing_icrs(obs.tmid), width="5 deg")
        d = map_safe.run(map_maker.run(cutout, obs), obs)
        stacked_map.stack(d)
    exclusion = geom.to_image().region_mask([CircleSkyRegion(center=target, radius=Angle("0.35 deg"))], inside=False)
    ring = RingBackgroundMaker(r_in="0.5 deg", width="0.3 deg", exclusion_mask=exclusion)
    onoff_map = ring.run(stacked_map.to_image())
    sig_map = ExcessMapEstimator(correlation_radius="0.15 deg", selection_optional=[]).run(onoff_map)["sqrt_ts"]
    peak = float(np.nanmax(sig_map.data))

    checks = {
        "detected above 5 sigma": significance > 5,
        "index within 3 sigma of the simulated one": abs(idx - (-index_true)) <= 3 * idx_err,
        "flux at 1 TeV within 3 sigma of the simulated one": abs(amp - amplitude_true) <= 3 * amp_err,
    }
    report = {
        "observations": [int(o.obs_id) for o in observations],
        "livetime_s": livetime,
        "n_on": n_on, "n_off": n_off, "alpha": alpha, "excess": excess, "significance": significance,
        "fit_range_tev": [fit_lo, fit_hi],
        "index": idx, "index_err": idx_err, "index_simulated": -index_true,
        "amplitude_1tev": amp, "amplitude_err": amp_err, "amplitude_simulated": amplitude_true,
        "fit_success": bool(result.success),
        "map_peak_significance": peak,
        "checks": checks,
        "png": args.png,
    }

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(13, 5))
    ax1 = fig.add_subplot(1, 2, 1, projection=sig_map.geom.to_image().wcs)
    top = max(5.0, peak)
    im = ax1.imshow(sig_map.data.squeeze(), origin="lower", cmap="RdBu_r", vmin=-top, vmax=top)
    fig.colorbar(im, ax=ax1, label="significance (sqrt TS), ring background")
    ax1.set_xlabel("RA")
    ax1.set_ylabel("Dec")
    ax1.set_title(f"{len(observations)} wobble runs, {livetime / 60:.1f} min")
    ax2 = fig.add_subplot(1, 2, 2)
    e_plot = [max(fit_lo, 0.3), min(fit_hi, 100)] * u.TeV
    true_model = PowerLawSpectralModel(index=-index_true, amplitude=f"{amplitude_true} cm-2 s-1 TeV-1", reference="1 TeV")
    true_model.plot(e_plot, ax=ax2, sed_type="e2dnde", color="k", ls="--", label="simulated source")
    pl.plot(e_plot, ax=ax2, sed_type="e2dnde", color="C0", label=f"fit: index {idx:.2f} ± {idx_err:.2f}")
    pl.plot_error(e_plot, ax=ax2, sed_type="e2dnde", facecolor="C0", alpha=0.3)
    fp.plot(ax=ax2, sed_type="e2dnde", color="C1", label="flux points")
    ax2.set_title(f"reflected regions: excess {excess:.0f}, {significance:.1f} sigma")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)

    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"observations {report['observations']}, livetime {livetime:.0f} s")
        print(f"on {n_on:.0f}, off {n_off:.0f}, alpha {alpha:.3f}: excess {excess:.1f}, significance {significance:.1f} sigma "
              f"(map peak {peak:.1f})")
        print(f"power law {fit_lo:.2f}-{fit_hi:.1f} TeV: index {idx:.3f} ± {idx_err:.3f} (simulated {-index_true}), "
              f"dN/dE(1 TeV) {amp:.3e} ± {amp_err:.3e} (simulated {amplitude_true:.3e}) cm-2 s-1 TeV-1")
        for name, ok in checks.items():
            print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        print(f"plot: {args.png}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
