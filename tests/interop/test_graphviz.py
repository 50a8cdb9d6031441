"""`lineage --svg` and `--dot` rendered by the real Graphviz `dot`, checked as SVG XML."""
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SST1MFLOW_BIN", str(ROOT / "target" / "debug" / "sst1mflow"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (scripts/setup.sh installs it)")
def test_lineage_svg_is_valid_and_names_every_activity(tmp_path):
    store = tmp_path / "store"
    subprocess.run([BIN, "--store", str(store), "-q", "run", str(ROOT / "recipes" / "demo.json")], check=True)
    count = store / "views" / "demo" / "count" / "all" / "count.txt"
    svg = tmp_path / "lineage.svg"
    subprocess.run([BIN, "--store", str(store), "lineage", str(count), "--svg", str(svg)], check=True,
                   capture_output=True)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert text.count("command v1") == 6
    assert "summary" in text and "run_2024030402.csv" in text
    # The dot source is accepted by dot as is.
    dot_src = subprocess.run([BIN, "--store", str(store), "lineage", str(count), "--dot"], check=True,
                             capture_output=True, text=True).stdout
    rendered = subprocess.run(["dot", "-Tsvg"], input=dot_src, capture_output=True, text=True, check=True).stdout
    assert rendered.lstrip().startswith("<?xml")
