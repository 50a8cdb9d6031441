"""W3C PROV export read by the reference Python `prov` package (not by our own reader)."""
import hashlib
import json
import os
import pathlib
import subprocess

import prov.model as pm
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prov")
    store = tmp / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", str(ROOT / "recipes" / "demo.json")], check=True,
                   capture_output=True)
    count = store / "views" / "demo" / "count" / "all" / "count.txt"
    out = tmp / "lineage.prov.json"
    subprocess.run([BIN, "--store", str(store), "export-prov", str(count), "-o", str(out)], check=True)
    provn = subprocess.run([BIN, "--store", str(store), "export-prov", str(count), "--format", "prov-n"],
                           check=True, capture_output=True, text=True).stdout
    return store, count, out, provn


def test_prov_json_loads_and_reserialises_as_prov_n(exported):
    store, count, out, _ = exported
    doc = pm.ProvDocument.deserialize(str(out), format="json")
    records = list(doc.get_records())
    kinds = {}
    for r in records:
        kinds[type(r).__name__] = kinds.get(type(r).__name__, 0) + 1
    # 4 raw runs, 4 selections, the merge and the count; 6 activities; one software agent and one person.
    assert kinds["ProvEntity"] == 10
    assert kinds["ProvActivity"] == 6
    assert kinds["ProvAgent"] == 2
    assert kinds["ProvUsage"] == 4 + 4 + 1
    assert kinds["ProvGeneration"] == 6
    assert kinds["ProvDerivation"] == 4 + 4 + 1
    assert kinds["ProvAssociation"] == 12
    assert kinds["ProvDelegation"] == 6
    provn = doc.serialize(format="provn")
    assert provn.startswith("document") and "wasDerivedFrom" in provn
    # Round trip through prov's own JSON serialiser keeps every record.
    again = pm.ProvDocument.deserialize(content=doc.serialize(format="json"), format="json")
    assert len(list(again.get_records())) == len(records)


def test_entities_carry_their_sha256(exported):
    store, count, out, _ = exported
    doc = pm.ProvDocument.deserialize(str(out), format="json")
    digest = hashlib.sha256(count.read_bytes()).hexdigest()
    entity = doc.get_record(f"sha256:{digest}")
    assert entity, "the exported product is an entity named by its digest"
    attrs = {str(k): v for k, v in entity[0].attributes}
    assert attrs["sst1m:sha256"] == digest
    assert attrs["sst1m:kind"] == "summary"
    # Every entity's digest matches its bytes: its object, or for a raw input read in place,
    # the file at its location.
    located = 0
    for e in doc.get_records(pm.ProvEntity):
        attrs = dict((str(k), v) for k, v in e.attributes)
        h = attrs["sst1m:sha256"]
        path = pathlib.Path(attrs["prov:location"]) if "prov:location" in attrs else store / "objects" / h[:2] / h
        located += "prov:location" in attrs
        assert hashlib.sha256(path.read_bytes()).hexdigest() == h
    assert located == 4, "the four raw runs carry where they were read"


def test_activities_have_times_versions_and_agents(exported):
    _, _, out, provn = exported
    data = json.loads(out.read_text())
    for key, act in data["activity"].items():
        assert act["prov:startTime"] <= act["prov:endTime"]
        assert act["sst1m:stage"] == "command" and act["sst1m:stageVersion"] == "1"
        assert act["sst1m:pipelineVersion"].startswith("0.1.0+")
        assert key == "act:" + act["sst1m:key"]
    agent_types = sorted(a["prov:type"]["$"] for a in data["agent"].values())
    assert agent_types == ["prov:Person", "prov:SoftwareAgent"]
    # Our own PROV-N has the same statements.
    assert provn.count("\n  entity(") == 10 and provn.count("\n  activity(") == 6
    assert provn.rstrip().endswith("endDocument")
