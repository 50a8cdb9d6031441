"""The IRF core (crates/science/src/irf) against pyirf on the same events, weights and binning: effective area
(per energy, and per energy and offset), energy dispersion, PSF table and background rate,
bin for bin. Also prints both compute times (the benchmark figure; nothing is asserted on it)."""
import json
import os
import pathlib
import subprocess
import time

import numpy as np
import pytest

pyirf = pytest.importorskip("pyirf")
import astropy.units as u  # noqa: E402
from astropy.table import QTable  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROFILE = "release" if os.environ.get("SST1MFLOW_BIN", "").find("/release/") >= 0 else "debug"
EXAMPLE = ROOT / "target" / PROFILE / "examples" / "irf_compute"


def events(n, rng):
    """A diffuse simulation's selected events: power-law energies, offsets uniform in solid angle."""
    u1 = rng.random(n)
    e_min, e_max = 0.5, 200.0
    true_e = (e_min ** -1 + u1 * (e_max ** -1 - e_min ** -1)) ** -1  # E^-2 between e_min and e_max
    cos_max = np.cos(np.radians(4.0))
    true_off = np.degrees(np.arccos(1 - rng.random(n) * (1 - cos_max)))
    reco_e = true_e * rng.lognormal(0.0, 0.25, n)
    theta = np.abs(rng.normal(0, 0.15, n)) + np.abs(rng.normal(0, 0.05, n))
    reco_off = np.abs(true_off + rng.normal(0, 0.1, n))
    weight = rng.exponential(1.0, n)
    return np.column_stack([true_e, reco_e, true_off, theta, reco_off, weight])


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} not built (cargo build --examples)")
    tmp = tmp_path_factory.mktemp("irf")
    rng = np.random.default_rng(7)
    ev = events(1_000_000, rng)
    sim = dict(n_showers=5e6, energy_min=0.5, energy_max=200.0, max_impact=400.0, spectral_index=-2.0,
               viewcone_min=0.0, viewcone_max=4.0)
    spec = dict(
        true_energy=list(np.geomspace(0.1, 300, 26)), migration=list(np.geomspace(0.2, 5, 31)),
        fov_offset=list(np.linspace(0, 4, 9)), rad=list(np.linspace(0, 1, 51)),
        reco_energy=list(np.geomspace(0.1, 300, 22)), bg_offset=list(np.linspace(0, 5, 11)),
        sim=sim, t_obs_s=3600.0,
        n_on=list(rng.uniform(0, 300, 400)) + [0.0, 5.0, 20.0], n_off=list(rng.uniform(0, 1000, 400)) + [0.0, 0.5, 1.0])
    (tmp / "spec.json").write_text(json.dumps(spec))
    ev.astype(np.float64).tofile(tmp / "events.f64")
    out = subprocess.run([str(EXAMPLE), str(tmp / "spec.json"), str(tmp / "events.f64"), str(tmp)],
                         check=True, capture_output=True, text=True)
    ours = {k: np.fromfile(tmp / f"{k}.f64") for k in ["aeff_e", "aeff", "edisp", "psf", "bkg", "theta_cut", "sens", "curve"]}
    ours["seconds"] = json.loads(out.stdout)["seconds"]
    return ev, spec, ours


def test_every_irf_matches_pyirf_bin_for_bin(computed):
    from pyirf.irf import (background_2d, effective_area_per_energy, effective_area_per_energy_and_fov,
                           energy_dispersion, psf_table)
    from pyirf.simulations import SimulatedEventsInfo
    ev, spec, ours = computed
    s = spec["sim"]
    info = SimulatedEventsInfo(n_showers=s["n_showers"], energy_min=s["energy_min"] * u.TeV,
                               energy_max=s["energy_max"] * u.TeV, max_impact=s["max_impact"] * u.m,
                               spectral_index=s["spectral_index"], viewcone_min=s["viewcone_min"] * u.deg,
                               viewcone_max=s["viewcone_max"] * u.deg)
    t = QTable(dict(true_energy=ev[:, 0] * u.TeV, reco_energy=ev[:, 1] * u.TeV,
                    true_source_fov_offset=ev[:, 2] * u.deg, theta=ev[:, 3] * u.deg,
                    reco_source_fov_offset=ev[:, 4] * u.deg, weight=ev[:, 5]))
    e = np.array(spec["true_energy"]) * u.TeV
    off = np.array(spec["fov_offset"]) * u.deg
    start = time.perf_counter()
    theirs = dict(
        aeff_e=effective_area_per_energy(t, info, e).to_value(u.m ** 2),
        aeff=effective_area_per_energy_and_fov(t, info, e, off).to_value(u.m ** 2),
        edisp=energy_dispersion(t, e, off, np.array(spec["migration"])),
        psf=psf_table(t, e, np.array(spec["rad"]) * u.deg, off).to_value(u.sr ** -1),
        bkg=background_2d(t, np.array(spec["reco_energy"]) * u.TeV, np.array(spec["bg_offset"]) * u.deg,
                          spec["t_obs_s"] * u.s).to_value(u.Unit("s-1 TeV-1 sr-1")),
    )
    pyirf_s = time.perf_counter() - start
    for name, value in theirs.items():
        # Where nothing was thrown pyirf's effective area is 0/0 = NaN; ours is 0 (no area),
        # which is what a GADF file needs.
        value = np.nan_to_num(np.asarray(value).ravel())
        assert value.shape == ours[name].shape, name
        assert np.count_nonzero(value) > 0.3 * value.size, f"{name}: mostly empty test binning"
        np.testing.assert_allclose(ours[name], value, rtol=1e-9, atol=0, err_msg=name)
    # Point-source sensitivity as pyirf's example computes it, on the same events (signal: θ,
    # background: the reco offset), timed with the IRFs above.
    import operator
    from pyirf.cuts import calculate_percentile_cut, evaluate_binned_cut
    from pyirf.binning import create_histogram_table
    from pyirf.sensitivity import calculate_sensitivity, estimate_background
    start = time.perf_counter()
    reco_bins = np.array(spec["reco_energy"]) * u.TeV
    theta_cuts = calculate_percentile_cut(t["theta"], t["reco_energy"], reco_bins, fill_value=0.32 * u.deg,
                                          percentile=68, min_events=10)
    on = evaluate_binned_cut(t["theta"], t["reco_energy"], theta_cuts, operator.le)
    signal_hist = create_histogram_table(t[on], reco_bins)
    background_hist = estimate_background(t, reco_bins, theta_cuts, alpha=0.2, fov_offset_min=0 * u.deg,
                                          fov_offset_max=1 * u.deg)
    sens = calculate_sensitivity(signal_hist, background_hist, alpha=0.2)
    pyirf_s += time.perf_counter() - start
    curve = ours["curve"].reshape(-1, 3)
    np.testing.assert_allclose(curve[:, 0], signal_hist["n_weighted"], rtol=1e-9)
    np.testing.assert_allclose(curve[:, 1], background_hist["n_weighted"], rtol=1e-9)
    theirs = np.asarray(sens["relative_sensitivity"])
    assert np.array_equal(np.isfinite(theirs), np.isfinite(curve[:, 2]))
    np.testing.assert_allclose(curve[:, 2][np.isfinite(theirs)], theirs[np.isfinite(theirs)], rtol=1e-8)
    print(f"1e6 events, IRFs + theta cuts + sensitivity: sst1mflow {ours['seconds']:.3f} s, "
          f"pyirf {pyirf_s:.3f} s ({pyirf_s / ours['seconds']:.1f}x)")


def test_point_like_simulation_cannot_give_offset_bins():
    from pyirf.simulations import SimulatedEventsInfo
    info = SimulatedEventsInfo(n_showers=10, energy_min=1 * u.TeV, energy_max=10 * u.TeV, max_impact=100 * u.m,
                               spectral_index=-2, viewcone_min=0 * u.deg, viewcone_max=0 * u.deg)
    with pytest.raises(ValueError, match="diffuse"):
        info.calculate_n_showers_per_fov([0, 1] * u.deg)


def test_cuts_and_sensitivity_match_pyirf(computed):
    from pyirf.cuts import calculate_percentile_cut
    from pyirf.sensitivity import relative_sensitivity
    ev, spec, ours = computed
    table = calculate_percentile_cut(ev[:, 3] * u.deg, ev[:, 1] * u.TeV, np.array(spec["reco_energy"]) * u.TeV,
                                     fill_value=0.32 * u.deg, percentile=68, min_events=10)
    np.testing.assert_allclose(ours["theta_cut"], table["cut"].to_value(u.deg), rtol=1e-12)
    theirs = relative_sensitivity(np.array(spec["n_on"]), np.array(spec["n_off"]), 0.2)
    assert np.array_equal(np.isinf(theirs), np.isinf(ours["sens"]))
    finite = np.isfinite(theirs)
    assert finite.sum() > 100
    np.testing.assert_allclose(ours["sens"][finite], theirs[finite], rtol=1e-8)
