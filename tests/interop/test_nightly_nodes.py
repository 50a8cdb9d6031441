"""Nightly processing with a production of two nodes (issue 22): the stereo quickstart (node
at zenith 28 deg) plus a node at zenith 65 deg, whose IRFs are made from the same models on
Monte Carlo simulated there. A night of the Crab (zenith ~30 deg) and Mrk 421 (zenith ~65 deg)
goes through `sst1mflow nightly`: every run gets the node nearest its zenith, every DL3 the
IRFs of its runs' node (the IRF HDUs it carries say which), for cs1, cs2 and stereo; gammapy
detects the Crab in its data store, and the Mrk 421 one is made with the second node.
"""
import json
import pathlib
import subprocess

import pytest

from test_nightly import ARRAY, BIN, DATE, ROOT, gammapy_significance

NODE_B_ALT_DEG = 25.0
# The Monte Carlo of the second node: the quickstart's test samples, smaller.
NODE_B_SIMULATIONS = {
    "gamma-point": {"n_events": 8000, "seed": 303},
    "proton-test": {"n_events": 16000, "seed": 304},
    "gamma-diffuse-test": {"n_events": 12000, "seed": 305},
}


def two_node_recipe():
    """recipes/quickstart-stereo.json's production steps (reused as they are in the shared
    store) plus, at zenith 65 deg, the simulations, DL1, DL2 with the same models, cuts and
    IRFs of each setup (telescope 1, telescope 2, stereo)."""
    base = json.loads((ROOT / "recipes" / "quickstart-stereo.json").read_text())
    observation = ("sim-obs", "dl1-obs", "stereo-obs", "dl2-obs", "dl3", "datastore", "performance")
    steps = [s for s in base["steps"] if not s["name"].startswith(observation)]
    by_name = {s["name"]: s for s in base["steps"]}
    models = {
        "mono1": "train-rfs-mono", "mono2": "train-rfs-mono-tel2", "tel1": "train-rfs-tel1", "tel2": "train-rfs-tel2",
    }

    def dl2(name, dl1, model):
        roles = {r: f"{models[model]}.{r}" for r in ("energy", "disp_norm", "disp_sign", "gh")}
        return {"name": name, "stage": "dl1-dl2", "inputs": {"dl1": dl1, **roles}}

    for sim, overrides in NODE_B_SIMULATIONS.items():
        params = dict(by_name[f"sim-{sim}"]["params"], **overrides, pointing_alt_deg=NODE_B_ALT_DEG)
        steps.append({"name": f"b-sim-{sim}", "stage": "simulate", "params": params})
        for tel in (1, 2):
            steps.append({"name": f"b-dl1-{sim}-tel{tel}", "stage": "r0-dl1", "params": {"tel_id": tel},
                          "inputs": {"r1": f"b-sim-{sim}.r1_tel_00{tel}"}})
        steps.append({"name": f"b-stereo-{sim}", "stage": "dl1-stereo",
                      "inputs": {"tel1": f"b-dl1-{sim}-tel1.dl1", "tel2": f"b-dl1-{sim}-tel2.dl1"}})
        steps.append(dl2(f"b-dl2-mono1-{sim}", f"b-dl1-{sim}-tel1.dl1", "mono1"))
        steps.append(dl2(f"b-dl2-mono2-{sim}", f"b-dl1-{sim}-tel2.dl1", "mono2"))
        steps.append(dl2(f"b-dl2-{sim}-tel1", f"b-stereo-{sim}.dl1_tel1", "tel1"))
        steps.append(dl2(f"b-dl2-{sim}-tel2", f"b-stereo-{sim}.dl1_tel2", "tel2"))
        steps.append({"name": f"b-dl2-stereo-{sim}", "stage": "dl2-stereo",
                      "inputs": {"tel1": f"b-dl2-{sim}-tel1.dl2", "tel2": f"b-dl2-{sim}-tel2.dl2"}})
    for setup in ("mono1", "mono2", "stereo"):
        steps.append({"name": f"b-gh-cuts-{setup}", "stage": "gh-cuts",
                      "inputs": {"gamma": f"b-dl2-{setup}-gamma-point.dl2"}})
        test = {"gamma": f"b-dl2-{setup}-gamma-diffuse-test.dl2", "proton": f"b-dl2-{setup}-proton-test.dl2"}
        steps.append({"name": f"b-irfs-{setup}", "stage": "make-irfs",
                      "inputs": dict(test, cuts=f"b-gh-cuts-{setup}.cuts")})
        steps.append({"name": f"b-irfs-{setup}-global", "stage": "make-irfs", "inputs": test})
    return {"name": "two-nodes", "config": base["config"], "steps": steps,
            "description": "the stereo quickstart's production plus a second node at zenith 65 deg (tests)"}


@pytest.fixture(scope="module")
def two_node_night(tmp_path_factory, stereo_quickstart_store):
    if not ARRAY.exists():
        pytest.skip(f"{ARRAY} not found (the shared data folder is absent)")
    store = stereo_quickstart_store
    tmp = tmp_path_factory.mktemp("two-nodes")
    recipe = tmp / "two-nodes.json"
    recipe_json = two_node_recipe()
    # The recipe's config is relative to recipes/.
    recipe_json["config"] = str((ROOT / "recipes" / recipe_json["config"]).resolve())
    recipe.write_text(json.dumps(recipe_json, indent=1))
    r = subprocess.run([BIN, "--store", str(store), "-q", "--json", "run", str(recipe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)
    # Node A's products are the quickstart's, reused: only the second node's are made (once per
    # store).
    ran = [a["step"] for a in report["activities"] if a["outcome"] == "ran"]
    assert all(step.startswith("b-") for step in ran), ran
    config = tmp / "nightly_config.json"
    data = json.loads((ROOT / "config" / "sst1mpipe_data_config.json").read_text())
    mc = json.loads((ROOT / "config" / "sst1mpipe_mc_config.json").read_text())
    data["event_selection"] = mc["event_selection"]
    data["analysis"]["global_gammaness_cut"] = mc["analysis"]["global_gammaness_cut"]
    config.write_text(json.dumps(data, indent=1))
    raw = tmp / "raw"
    r = subprocess.run([BIN, "-q", "simulate-night", str(raw), "--date", DATE, "--run-duration", "20", "--seed", "2207",
                        "--runs-per-wobble", "1", "--flux-scale", "30", "--targets", "Crab,Mrk421"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([BIN, "--store", str(store), "--json", "nightly", "--raw", str(raw), "--date", DATE,
                        "--production", "two-nodes", "--config", str(config), "--subarray", str(ARRAY)],
                       capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads(r.stdout)
    print(f"two-node nightly: {summary['activities']}")
    return r.returncode, summary


def test_each_run_and_each_dl3_gets_the_node_nearest_its_zenith(two_node_night):
    code, s = two_node_night
    assert code == 0, json.dumps(s, indent=1)[-5000:]
    nodes = {n["node"]: n["zenith_deg"] for n in s["production_nodes"]}
    assert len(nodes) == 2, nodes
    low, high = sorted(nodes, key=nodes.get)
    assert abs(nodes[low] - 28.0) < 0.5 and abs(nodes[high] - (90.0 - NODE_B_ALT_DEG)) < 0.5, nodes
    for n in s["production_nodes"]:
        slugs = {setup["setup"] for setup in n["setups"]}
        assert slugs == {"tel1", "tel2", "stereo"}, n
    analysed = [r for r in s["runs"] if r["status"] == "analysed"]
    targets = {r["target"] for r in analysed}
    assert targets == {"Crab", "Mrk421"}, targets
    for r in analysed:
        nearest = min(nodes, key=lambda n: abs(nodes[n] - r["zenith_deg"]))
        assert r["node"] == nearest, r
        assert r["node"] == (low if r["target"] == "Crab" else high), r
    # Every DL3 was made, with its runs' node; the IRF HDUs it carries are that node's.
    from astropy.io import fits
    day = pathlib.Path(s["daily_dir"])
    made = [d for d in s["dl3"] if d["outcome"] in ("ran", "reused")]
    assert len(made) == len(s["dl3"]) == 2 * 2 * 3 * 2, s["dl3"]  # 2 targets x 2 wobbles x 3 setups x 2 cuts
    for d in made:
        assert d["node"] == (low if d["target"] == "Crab" else high), d
    for target, node in (("Crab", low), ("Mrk421", high)):
        for setup in ("cs1", "cs2", "stereo"):
            for sub in ("dl3", "dl3_eff"):
                files = sorted((day / target / setup / sub).glob("*.fits*"))
                assert files, (target, setup, sub)
                for f in files:
                    with fits.open(f) as hdus:
                        irf_nodes = {h.header["IRFNODE"] for h in hdus[1:] if "IRFNODE" in h.header}
                        assert irf_nodes == {node}, (f, irf_nodes)
                        assert len(hdus["EVENTS"].data) > 0, f


def test_gammapy_detects_the_crab_of_the_two_node_night(two_node_night):
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    from gammapy.data import DataStore

    code, s = two_node_night
    day = pathlib.Path(s["daily_dir"])
    crab = SkyCoord(83.6333, 22.0145, unit="deg", frame="icrs")
    for setup in ("cs1", "cs2", "stereo"):
        table = DataStore.from_dir(day / "datastore" / setup).obs_table
        pointing = SkyCoord(table["RA_PNT"], table["DEC_PNT"], unit="deg", frame="icrs")
        ids = list(table["OBS_ID"][pointing.separation(crab) < 2 * u.deg])
        assert len(ids) == 2 and len(table) == 4, (setup, list(table["OBS_ID"]))  # Crab's W1 and W2 of 4
        sig, n_on, n_off, n_obs = gammapy_significance(day / "datastore" / setup, 83.6333, 22.0145, ids)
        print(f"{setup}: ON {n_on}, OFF {n_off}, {sig:.1f} sigma (gammapy)")
        assert n_obs == 2 and sig > 5, (setup, sig, n_on, n_off)
