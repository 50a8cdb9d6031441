"""Fixtures shared by several interop modules."""
import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELEASE_BIN = os.environ.get("SST1MFLOW_RELEASE_BIN", str(ROOT / "target" / "release" / "sst1mflow"))


@pytest.fixture(scope="session")
def stereo_quickstart_store(tmp_path_factory):
    """A store in which recipes/quickstart-stereo.json has run, once per session: the stereo
    quickstart's tests read it, and it is the one-node production of the nightly tests."""
    if not pathlib.Path(RELEASE_BIN).exists():
        pytest.skip(f"release binary {RELEASE_BIN} not built (cargo build --release)")
    # SST1MFLOW_TEST_STEREO_STORE: a store kept between test sessions (development); the run
    # below then reuses what it holds.
    given = os.environ.get("SST1MFLOW_TEST_STEREO_STORE")
    store = pathlib.Path(given) if given else tmp_path_factory.mktemp("quickstart-stereo") / "store"
    t0 = time.time()
    run = subprocess.run([RELEASE_BIN, "--store", str(store), "-q", "run", str(ROOT / "recipes" / "quickstart-stereo.json")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"stereo quickstart from scratch: {time.time() - t0:.1f} s")
    return store
