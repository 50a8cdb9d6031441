"""The SLURM executor on a real single-node SLURM (scripts/test.sh starts it with
scripts/slurm_local/start-slurm.sh): the same product hashes as a local run, a coordinator
SIGKILLed at random moments that re-attaches without submitting any job twice, failures of every
kind recorded with the job's state, and SIGTERM cancelling this run's jobs only."""
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import RELEASE_BIN, ROOT


def slurm_up():
    if shutil.which("sbatch") is None:
        return "sbatch is not installed"
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        return f"no SLURM controller answers: {r.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def slurm():
    if not pathlib.Path(RELEASE_BIN).exists():
        pytest.skip(f"release binary {RELEASE_BIN} not built (cargo build --release)")
    why = slurm_up()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests, but {why}")
        pytest.skip(f"{why} (scripts/test.sh starts a local one as root)")
    return True


def sst(store, *args, check=False, **kw):
    r = subprocess.run([RELEASE_BIN, "--store", str(store), *args], capture_output=True, text=True, **kw)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def small_quickstart(tmp):
    """recipes/quickstart.json with a quarter of the events and half the observing time: the
    quickstart's shape (simulation, DL1, training, DL2, cuts, IRFs, DL3, index) in ~1.5 min."""
    recipe = json.loads((ROOT / "recipes" / "quickstart.json").read_text())
    for step in recipe["steps"]:
        p = step.get("params", {})
        if "n_events" in p:
            p["n_events"] //= 4
        if "duration_s" in p:
            p["duration_s"] //= 2
    recipe["config"] = str((ROOT / "recipes" / recipe["config"]).resolve())
    recipe["name"] = "quickstart-small"
    path = tmp / "quickstart-small.json"
    path.write_text(json.dumps(recipe, indent=1))
    return path


# Job names unique to this test session: SLURM's accounting outlives it (a developer's cluster
# keeps earlier sessions' jobs), and the tests count their jobs by name.
SESSION = f"{os.getpid()}x{int(time.time()) % 100000}"


def job_name(name):
    return f"{name}-{SESSION}"


def settings(tmp, name, **extra):
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"job_name": job_name(name), **extra}))
    return path


def outputs(store, recipe):
    r = sst(store, "--json", "-q", "run", str(recipe), check=True)
    report = json.loads(r.stdout)
    assert report["ran"] == 0, "the store was not complete"
    return {(a["step"], a["item"]): a["outputs"] for a in report["activities"]}


def array_tasks(job_name):
    """Array tasks SLURM's accounting holds for jobs named job_name-*."""
    for _ in range(30):
        r = subprocess.run(["sacct", "-n", "-P", "-X", "-S", "now-3hours", "-o", "JobName,JobID,State"],
                           capture_output=True, text=True, check=True)
        tasks = []
        for line in r.stdout.splitlines():
            name, job_id, state = line.split("|")[:3]
            if not name.startswith(job_name + "-"):
                continue
            m = re.fullmatch(r"(\d+)_\[(\d+)-(\d+)\]", job_id)
            if m:
                tasks += [f"{m[1]}_{i}" for i in range(int(m[2]), int(m[3]) + 1)]
            else:
                tasks.append(job_id)
        if not any(s in ("PENDING", "RUNNING") for s in r.stdout.split()):
            return tasks
        time.sleep(1)
    return tasks


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, slurm):
    tmp = tmp_path_factory.mktemp("slurm-local")
    recipe = small_quickstart(tmp)
    sst(tmp / "store", "-q", "run", str(recipe), check=True)
    return recipe, outputs(tmp / "store", recipe)


def test_the_quickstart_on_slurm_gives_the_local_hashes_and_records_its_jobs(tmp_path, local_reference):
    recipe, reference = local_reference
    store = tmp_path / "store"
    conf = settings(tmp_path, "s1mf-same")
    t0 = time.time()
    r = sst(store, "-q", "run", str(recipe), "--executor", "slurm", "--slurm-config", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"quickstart-small on SLURM: {time.time() - t0:.1f} s; {r.stdout.strip().splitlines()[-3]}")
    assert outputs(store, recipe) == reference
    assert "SLURM: 34 array task(s)" in r.stdout, r.stdout
    assert len(array_tasks(job_name("s1mf-same"))) == 34
    assert sst(store, "verify").returncode == 0
    status = json.loads(sst(store, "--json", "status", check=True).stdout)[0]
    jobs = status["slurm_jobs"]
    assert len(jobs) == 34
    for j in jobs:
        assert j["job"]["state"] == "COMPLETED" and j["job"]["exit_code"] == "0:0", j
        assert j["job"]["node"] == "localhost" and re.fullmatch(r"\d+_\d+", j["job"]["job_id"]), j
        assert isinstance(j["job"]["elapsed_s"], int) and j["job"]["attempts"] == 1, j
    key = next(j["key"] for j in jobs if j["step"] == "train-rfs")
    log = json.loads(sst(store, "--json", "log", key[:16], check=True).stdout)
    assert log["executor"]["job_id"] == next(j["job"]["job_id"] for j in jobs if j["step"] == "train-rfs")
    text = sst(store, "log", key[:16], check=True).stdout
    assert text.startswith("# SLURM job ") and "COMPLETED (exit 0:0)" in text.splitlines()[0], text[:300]
    # Nothing of the executor is left behind in the store's temporary area.
    left = [p for p in (store / "tmp" / "slurm").rglob("*") if p.is_file()]
    assert left == [], left


def test_a_coordinator_killed_at_random_moments_reattaches_and_submits_no_job_twice(tmp_path, local_reference):
    recipe, reference = local_reference
    store = tmp_path / "store"
    conf = settings(tmp_path, "s1mf-kill")
    rng = random.Random(2301)
    for round_ in range(4):
        p = subprocess.Popen([RELEASE_BIN, "--store", str(store), "-q", "run", str(recipe), "--executor", "slurm",
                              "--slurm-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        delay = rng.uniform(2.0, 20.0)
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        print(f"round {round_}: killed after {delay:.1f} s (exit {p.returncode})")
        assert sst(store, "verify").returncode == 0, f"round {round_}"
    r = sst(store, "-q", "run", str(recipe), "--executor", "slurm", "--slurm-config", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert outputs(store, recipe) == reference
    assert sst(store, "verify").returncode == 0
    # Some activity was collected by a later coordinator than the one that submitted it.
    status = json.loads(sst(store, "--json", "status", check=True).stdout)[0]
    reattached = [j for j in status["slurm_jobs"]
                  if "# re-attached to SLURM job" in json.loads(sst(store, "--json", "log", j["key"][:16]).stdout)["log"]]
    print(f"{len(reattached)} of {len(status['slurm_jobs'])} activities collected after a re-attach")
    assert reattached
    tasks = array_tasks(job_name("s1mf-kill"))
    assert len(tasks) == len(set(tasks)) == 34, f"{len(tasks)} array tasks for 34 activities: {sorted(tasks)}"


FAILURES = {
    "name": "failures",
    "steps": [
        {"name": "ok", "argv": ["echo", "fine"]},
        {"name": "exits", "argv": ["sh", "-c", "echo boom >&2; exit 3"]},
        {"name": "after-exits", "argv": ["cat", "{input:x}"], "inputs": {"x": "exits.out"}},
        {"name": "slow", "argv": ["sleep", "300"]},
        {"name": "cancelled", "argv": ["sleep", "162"]},
        {"name": "killed", "argv": ["sleep", "161"]},
    ],
}


def failures_recipe(tmp):
    steps = [{"name": s["name"], "stage": "command", "inputs": s.get("inputs", {}),
              "params": {"argv": s["argv"], "stdout": "out", "outputs": {"out": {"path": "out.txt", "kind": "text"}}}}
             for s in FAILURES["steps"]]
    path = tmp / "failures.json"
    path.write_text(json.dumps({"name": "failures", "steps": steps}))
    return path


def pid_of(argv):
    for proc in pathlib.Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in argv]:
                return int(proc.name)
        except (OSError, ValueError):
            pass
    return None


def parent_of(pid):
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def wait_for(argv, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        pid = pid_of(argv)
        if pid:
            return pid
        time.sleep(0.2)
    raise AssertionError(f"{argv} never started")


def test_failed_cancelled_timed_out_and_killed_jobs_are_recorded_and_the_rest_completes(tmp_path, slurm):
    store = tmp_path / "store"
    conf = settings(tmp_path, "s1mf-fail", steps={"slow": {"time": "1"}})
    p = subprocess.Popen([RELEASE_BIN, "--store", str(store), "--json", "-q", "run", str(failures_recipe(tmp_path)),
                          "--executor", "slurm", "--slurm-config", str(conf)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The worker of "killed" is the parent of its command; "cancelled" is scancelled by job id.
    worker = parent_of(wait_for(["sleep", "161"]))
    assert b"slurm-worker" in pathlib.Path(f"/proc/{worker}/cmdline").read_bytes()
    os.kill(worker, signal.SIGKILL)
    env = dict(l.split("=", 1) for l in pathlib.Path(f"/proc/{parent_of(wait_for(['sleep', '162']))}/environ")
               .read_text().split("\0") if "=" in l)
    subprocess.run(["scancel", f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"], check=True)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1, err
    report = {a["step"]: a for a in json.loads(out)["activities"]}
    assert report["ok"]["outcome"] == "ran"
    assert report["after-exits"]["outcome"] == "skipped"
    expect = {
        "exits": r'command "sh" exited with status 3 \(SLURM job \d+_\d+ on localhost: FAILED, exit code 1:0\)',
        "slow": r"SLURM job \d+_\d+ ended TIMEOUT \(exit code 0:1[45]\) on localhost after \d+ s without a result; "
                r"its output ends:\n.*DUE TO TIME LIMIT",
        "cancelled": r"SLURM job \d+_\d+ ended CANCELLED \(exit code 0:15\) on localhost after \d+ s without a result",
        "killed": r"SLURM job \d+_\d+ ended FAILED \(exit code 0:9\) on localhost after \d+ s without a result",
    }
    for step, pattern in expect.items():
        assert report[step]["outcome"] == "failed", report[step]
        assert re.search(pattern, report[step]["detail"], re.S), f"{step}: {report[step]['detail']}"
    # Recorded like local failures: log (with the command's stderr), job state in status.
    log = sst(store, "log", report["exits"]["key"][:16], check=True).stdout
    assert "boom" in log and "FAILED (exit 1:0)" in log.splitlines()[0], log
    jobs = {j["step"]: j["job"] for j in json.loads(sst(store, "--json", "status").stdout)[0]["slurm_jobs"]}
    assert {s: jobs[s]["state"] for s in ("ok", "exits", "slow", "cancelled", "killed")} == {
        "ok": "COMPLETED", "exits": "FAILED", "slow": "TIMEOUT", "cancelled": "CANCELLED", "killed": "FAILED"}
    # Nothing half published: only the one product that was made is in the store, and it is intact.
    objects = [p for p in (store / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1 and objects[0].read_text() == "fine\n", objects
    assert sst(store, "verify").returncode == 0


def test_sigterm_cancels_this_runs_jobs_and_no_other(tmp_path, slurm):
    other = subprocess.run(["sbatch", "--parsable", "--job-name=not-ours", "-o", "/dev/null", "--wrap", "sleep 120"],
                           capture_output=True, text=True, check=True).stdout.strip()
    store = tmp_path / "store"
    recipe = tmp_path / "sleepers.json"
    recipe.write_text(json.dumps({"name": "sleepers", "steps": [
        {"name": f"s{i}", "stage": "command",
         "params": {"argv": ["sleep", str(170 + i)], "stdout": "out", "outputs": {"out": {"path": "o", "kind": "text"}}}}
        for i in range(3)]}))
    p = subprocess.Popen([RELEASE_BIN, "--store", str(store), "-q", "run", str(recipe), "--executor", "slurm",
                          "--slurm-config", str(settings(tmp_path, "s1mf-term"))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for i in range(3):
        wait_for(["sleep", str(170 + i)])
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "cancelled the 3 SLURM job(s) of this run" in err, err
    for _ in range(50):
        names = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout.split()
        if not any(n.startswith(job_name("s1mf-term") + "-") for n in names):
            break
        time.sleep(0.2)
    assert not any(n.startswith(job_name("s1mf-term") + "-") for n in names), names
    assert "not-ours" in names
    subprocess.run(["scancel", other])
    # The next run submits them afresh (their journal entries were dropped with the jobs).
    assert not any((store / "tmp" / "slurm").glob("*/job.json"))


def test_bad_slurm_settings_are_named_before_anything_is_submitted(tmp_path):
    if not pathlib.Path(RELEASE_BIN).exists():
        pytest.skip(f"release binary {RELEASE_BIN} not built")
    recipe = failures_recipe(tmp_path)
    store = tmp_path / "store"
    cases = [
        ({"partiton": "short"}, "unknown field `partiton`"),
        ({"time": "2h"}, "not a SLURM time limit"),
        ({"steps": {"nope": {"mem": "1G"}}}, 'the recipe has no step "nope"'),
        ({"stages": {"r0-dl2": {}}}, 'no stage is called "r0-dl2"'),
        ({"sbatch_args": ["--array=1-3"]}, "set by the executor itself"),
    ]
    for i, (content, message) in enumerate(cases):
        conf = tmp_path / f"bad{i}.json"
        conf.write_text(json.dumps(content))
        r = sst(store, "run", str(recipe), "--executor", "slurm", "--slurm-config", str(conf))
        assert r.returncode == 2 and message in r.stderr, (content, r.stderr)
        if i == 0:
            assert str(conf) in r.stderr, r.stderr
    r = sst(store, "run", str(recipe), "--partition", "short")
    assert r.returncode == 2 and "--partition apply only with --executor slurm" in r.stderr, r.stderr
    assert not (store / "objects").exists() or not any((store / "objects").rglob("*.*"))


def test_a_job_lost_by_the_cluster_is_submitted_again_with_the_attempt_recorded(tmp_path, slurm):
    """The journal of an activity names a job id that SLURM holds under another name (what a
    cluster reset leaves behind): the job is lost, not the activity's fault, so it is submitted
    again (attempt 2 of 1 + retries) and the record says so."""
    store = tmp_path / "store"
    recipe = tmp_path / "one.json"
    recipe.write_text(json.dumps({"name": "one", "steps": [
        {"name": "echo", "stage": "command",
         "params": {"argv": ["echo", "again"], "stdout": "out", "outputs": {"out": {"path": "o", "kind": "text"}}}}]}))
    key = json.loads(sst(store, "--json", "run", "--dry-run", str(recipe), check=True).stdout)["activities"][0]["key"]
    other = subprocess.run(["sbatch", "--parsable", "--array=0-0", "--job-name=someone-else", "-o", "/dev/null",
                            "--wrap", "true"], capture_output=True, text=True, check=True).stdout.strip()
    journal = store / "tmp" / "slurm" / key
    journal.mkdir(parents=True)
    (journal / "job.json").write_text(json.dumps(
        {"batch": "s1mf-lost-000000000000", "task": 0, "job_id": f"{other}_0", "attempt": 1}))
    r = sst(store, "--json", "-q", "run", str(recipe), "--executor", "slurm", "--retries", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    log = json.loads(sst(store, "--json", "log", key[:16], check=True).stdout)
    assert log["executor"]["attempts"] == 2 and log["executor"]["state"] == "COMPLETED", log["executor"]
    assert f"# SLURM job {other}_0 ended LOST" in log["log"], log["log"]
    assert "submitting again (attempt 2 of 2)" in log["log"], log["log"]
    assert sst(store, "verify").returncode == 0
