//! Hostile and careless input to the store and the recipe reader (issue 16, first part): crafted
//! manifests and map files never make a command touch a file outside the store, a database is
//! never replaced under a running run, duplicate JSON keys and unbounded inputs are refused, and
//! an absurd `-j` is clamped. Driven through the real binary.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn manifests(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(store.join("manifests")).unwrap().flatten() {
        if d.path().is_dir() {
            out.extend(std::fs::read_dir(d.path()).unwrap().flatten().map(|f| f.path()));
        }
    }
    out.sort();
    out
}

fn set_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
}

#[test]
fn a_crafted_manifest_hash_is_refused_and_nothing_outside_the_store_is_touched() {
    let dir = TempDir::new("craft");
    let recipe = three_step_recipe(dir.path(), 2);
    let store = dir.path().join("store");
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let victim = dir.path().join("victim.txt");
    write(&victim, "not yours");
    let manifest = manifests(&store).into_iter().next().expect("a manifest");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    let first_output = m["generated"][0]["hash"].as_str().unwrap().to_string();
    for crafted in [victim.to_str().unwrap(), "a", "ABCDEF", &"g".repeat(64)] {
        m["generated"][0]["hash"] = serde_json::json!(crafted);
        set_writable(&manifest);
        std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
        let out = sst1mflow(&store, &["rebuild-db", "--force"]);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "crafted {crafted}: {e}");
        assert!(e.contains(manifest.to_str().unwrap()) && e.contains("not 64 lowercase hex digits"), "{e}");
        // The database was not replaced: gc still sees the real products, and deletes nothing outside.
        let out = sst1mflow(&store, &["gc", "--delete"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours");
        let out = sst1mflow(&store, &["verify"]);
        assert!(!out.status.success() && stdout(&out).contains("not 64 lowercase hex"), "{}", stdout(&out));
    }
    set_writable(&manifest);
    std::fs::write(&manifest, &original).unwrap();
    assert!(first_output.len() == 64);

    // Map files with a path where a hash belongs are refused the same way.
    let pins = store.join("manifests/pins.json");
    write(&pins, &format!("{{\"paper\": \"{}\"}}", victim.display()));
    let out = sst1mflow(&store, &["rebuild-db", "--force"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pins.json") && stderr(&out).contains("\"paper\""), "{}", stderr(&out));
    std::fs::remove_file(&pins).unwrap();
    let out = sst1mflow(&store, &["rebuild-db", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours");
}

#[test]
fn rebuild_db_waits_for_a_running_run_and_loses_nothing() {
    let dir = TempDir::new("rebuild-run");
    write_inputs(dir.path(), 3);
    // Three sequential one-second steps: the run is surely in progress when rebuild-db starts.
    let recipe = serde_json::json!({
        "name": "slow",
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
        "steps": [
            {"name": "a", "stage": "command", "inputs": {"f": "raw"},
             "params": {"argv": ["sh", "-c", "sleep 1; cat \"$@\"", "sh", "{input:f}"], "stdout": "o",
                        "outputs": {"o": {"path": "a.txt", "kind": "x"}}}},
            {"name": "b", "stage": "command", "inputs": {"f": "a.o"},
             "params": {"argv": ["sh", "-c", "sleep 1; cat \"$@\"", "sh", "{input:f}"], "stdout": "o",
                        "outputs": {"o": {"path": "b.txt", "kind": "x"}}}},
            {"name": "c", "stage": "command", "inputs": {"f": "b.o"},
             "params": {"argv": ["sh", "-c", "sleep 1; cat \"$@\"", "sh", "{input:f}"], "stdout": "o",
                        "outputs": {"o": {"path": "c.txt", "kind": "x"}}}}
        ]
    });
    let path = dir.path().join("slow.json");
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    let store = dir.path().join("store");
    let run = std::process::Command::new(bin())
        .args(["--quiet", "--store", store.to_str().unwrap(), "run", path.to_str().unwrap()])
        .spawn()
        .unwrap();
    // Wait until the run has the store open (its first activity is under way).
    let started = Instant::now();
    while !store.join("locks/gc").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rebuild = sst1mflow(&store, &["rebuild-db", "--force"]);
    assert!(rebuild.status.success(), "{}", stderr(&rebuild));
    assert!(stderr(&rebuild).contains("waiting for the runs using this store to finish"), "{}", stderr(&rebuild));
    let mut run = run;
    assert!(run.wait().unwrap().success());
    // Everything the run recorded is in the rebuilt database: nothing reruns, verify is clean.
    let (code, report, err) = run_json(&store, &path, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["ran"], 0, "{report}");
    assert_eq!(report["reused"], 3, "{report}");
    let out = sst1mflow(&store, &["verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn duplicate_keys_devices_and_absurd_job_counts() {
    let dir = TempDir::new("strict");
    let recipe = three_step_recipe(dir.path(), 1);
    let store = dir.path().join("store");
    // A config key given twice: the last would silently win.
    write(&dir.path().join("config.json"), "{\"cuts\": {\"suffix\": \"ok\",\n \"suffix\": \"other\", \"unused\": 1}}");
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("config.json") && stderr(&out).contains("duplicate key \"cuts.suffix\""),
        "{}",
        stderr(&out)
    );
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 1}}"#);
    // A recipe step list given twice.
    let text = std::fs::read_to_string(&recipe).unwrap();
    let doubled = text.replacen("\"steps\":", "\"steps\": [],\n  \"steps\":", 1);
    let twice = dir.path().join("twice.json");
    write(&twice, &doubled);
    let out = sst1mflow(&store, &["run", twice.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("twice.json") && stderr(&out).contains("duplicate key \"steps\""),
        "{}",
        stderr(&out)
    );
    // A device is not a recipe: refused at once instead of read without bound.
    let out = sst1mflow(&store, &["run", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/dev/zero: not a regular file"), "{}", stderr(&out));
    // -j 100000 runs, clamped, with a warning.
    let out = sst1mflow(&store, &["run", "-j", "100000", recipe.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("running at most 256 activities at a time"), "{}", stderr(&out));
}

/// Mounts a tmpfs of `kib` KiB at `at` (root only); false when this machine cannot.
fn mount_tmpfs(at: &Path, kib: u64) -> bool {
    std::fs::create_dir_all(at).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs", at.to_str().unwrap()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn unmount(at: &Path) {
    let _ = std::process::Command::new("umount").arg(at).status();
}

/// Unmounts on drop, so a failing assertion leaves no tmpfs behind.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        unmount(self.0);
    }
}

/// A three-step recipe run to completion in a store inside `dir`: the recipe, the store and the
/// last step's output hash.
fn finished_run_in(dir: &Path) -> (PathBuf, PathBuf, String) {
    let recipe = three_step_recipe(dir, 2);
    let store = dir.join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let summary =
        report["activities"].as_array().unwrap().last().unwrap()["outputs"]["n"].as_str().unwrap().to_string();
    (recipe, store, summary)
}

/// Every object of a store: its bytes hash to its name (verify), and as HDF5 it reads whole.
fn assert_objects_intact(store: &Path, what: &str) {
    let out = sst1mflow(store, &["verify"]);
    assert!(out.status.success(), "{what}: {}", stdout(&out));
    let Ok(dirs) = std::fs::read_dir(store.join("objects")) else { return };
    for d in dirs.flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let r = sst1mflow::io::r1::R1Reader::open(&f.path())
                .and_then(|r| r.read(0, r.n_events).map(|rows| (rows.len(), r.n_events)));
            match r {
                Ok((read, n)) => assert_eq!(read, n, "{what}: {}", f.path().display()),
                Err(e) => panic!("{what}: published object {} is damaged: {e}", f.path().display()),
            }
        }
    }
}

#[test]
fn a_full_disk_never_publishes_a_damaged_product() {
    let dir = TempDir::new("full");
    let recipe = dir.path().join("sim.json");
    write(
        &recipe,
        r#"{"name": "full", "steps": [{"name": "sim", "stage": "simulate",
            "params": {"particle": "gamma", "n_events": 150, "seed": 5, "energy_min_tev": 2, "max_impact_m": 200}}]}"#,
    );
    // The product's size on a roomy disk, then disks that run out around its end.
    let (code, report, err) = run_json(&dir.path().join("roomy"), &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let hash = report["activities"][0]["outputs"]["r1"].as_str().unwrap().to_string();
    let size = std::fs::metadata(dir.path().join("roomy/objects").join(&hash[..2]).join(&hash)).unwrap().len() / 1024;
    let mnt = dir.path().join("mnt");
    if !mount_tmpfs(&mnt, 1024) {
        println!("skipped: cannot mount a tmpfs here (needs root); the full-disk case is not tested");
        return;
    }
    unmount(&mnt);
    let (mut failed_at_close, mut succeeded) = (0, 0);
    for kib in (size.saturating_sub(160)..size + 288).step_by(32) {
        assert!(mount_tmpfs(&mnt, kib));
        let _mounted = Mounted(&mnt);
        let store = mnt.join("store");
        let out = sst1mflow(&store, &["--quiet", "run", recipe.to_str().unwrap()]);
        let e = stderr(&out);
        if out.status.success() {
            succeeded += 1;
        } else {
            assert!(e.contains("No space left on device") || e.contains("disk is full"), "{kib} KiB: {e}");
            failed_at_close += usize::from(e.contains("cannot finish writing"));
        }
        assert_objects_intact(&store, &format!("{kib} KiB tmpfs"));
    }
    // The sweep did reach both ends: disks too small at the very end, and large enough.
    assert!(failed_at_close > 0 && succeeded > 0, "close failures {failed_at_close}, successes {succeeded}");
}

#[test]
fn a_command_is_waited_for_whole_and_never_runs_twice_after_a_killed_run() {
    let dir = TempDir::new("procs");
    write_inputs(dir.path(), 1);
    let marks = dir.path().join("marks.txt");
    // A background child that writes the output after its parent exits.
    let recipe = serde_json::json!({
        "name": "bg",
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
        "steps": [{"name": "late", "stage": "command", "inputs": {"f": "raw"},
                   "params": {"argv": ["sh", "-c", "(sleep 1; echo late >> o.txt) & echo early > o.txt", "sh", "{input:f}"],
                              "outputs": {"o": {"path": "o.txt", "kind": "x"}}}}]
    });
    let path = dir.path().join("bg.json");
    write(&path, &serde_json::to_string(&recipe).unwrap());
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &path, &[]);
    assert_eq!(code, 0, "{err}");
    let object = view_target(&store, "bg/late/all/o.txt");
    assert_eq!(std::fs::read_to_string(&object).unwrap(), "early\nlate\n");
    assert_eq!(hash_of(&object), report["activities"][0]["outputs"]["o"].as_str().unwrap());

    // A run killed while its command sleeps: the resumed run must not leave the old command
    // running beside the new one (each start is marked; only one may finish).
    let recipe = serde_json::json!({
        "name": "slow",
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
        "steps": [{"name": "s", "stage": "command", "inputs": {"f": "raw"},
                   "params": {"argv": ["sh", "-c", "echo start >> \"$1\"; sleep 2; echo end >> \"$1\"; echo x > o.txt",
                                       "sh", marks.to_str().unwrap(), "{input:f}"],
                              "outputs": {"o": {"path": "o.txt", "kind": "x"}}}}]
    });
    let path = dir.path().join("slow.json");
    write(&path, &serde_json::to_string(&recipe).unwrap());
    let mut run = std::process::Command::new(bin())
        .args(["--quiet", "--store", store.to_str().unwrap(), "run", path.to_str().unwrap()])
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(&marks).unwrap_or_default().contains("start")
        && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let (code, report, err) = run_json(&store, &path, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["ran"], 1);
    // Long enough for an orphaned first command to have finished, had it survived.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "start\nstart\nend\n");
}

#[test]
fn a_command_sees_a_clean_environment_recorded_in_its_log() {
    let dir = TempDir::new("env");
    write_inputs(dir.path(), 1);
    let recipe = serde_json::json!({
        "name": "env",
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
        "steps": [{"name": "e", "stage": "command", "inputs": {"f": "raw"},
                   "params": {"argv": ["sh", "-c", "env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort", "sh", "{input:f}"],
                              "env": {"ANSWER": "42"}, "stdout": "o",
                              "outputs": {"o": {"path": "env.txt", "kind": "x"}}}}]
    });
    let path = dir.path().join("env.json");
    write(&path, &serde_json::to_string(&recipe).unwrap());
    let store = dir.path().join("store");
    let run = std::process::Command::new(bin())
        .args(["--json", "--store", store.to_str().unwrap(), "run", path.to_str().unwrap()])
        .env("SECRET_TOKEN", "leaks")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let seen = std::fs::read_to_string(view_target(&store, "env/e/all/env.txt")).unwrap();
    let names: Vec<&str> = seen.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert!(!seen.contains("SECRET_TOKEN"), "{seen}");
    assert!(seen.contains("ANSWER=42\n") && seen.contains("LANG=C.UTF-8\n"), "{seen}");
    for n in &names {
        assert!(
            ["ANSWER", "HOME", "LANG", "PATH", "SST1MFLOW_ACTIVITY_KEY", "SST1MFLOW_PIPELINE_VERSION"].contains(n),
            "{seen}"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let key = report["activities"][0]["key"].as_str().unwrap();
    let log = sst1mflow(&store, &["log", &key[..16]]);
    assert!(stdout(&log).contains("# environment: ") && stdout(&log).contains("ANSWER=42"), "{}", stdout(&log));
}

#[test]
fn command_outputs_through_a_symlinked_directory_or_a_hard_link_are_refused() {
    let dir = TempDir::new("escape");
    write_inputs(dir.path(), 1);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    write(&outside.join("victim.txt"), "outside file");
    let store = dir.path().join("store");
    for (name, script, expected) in [
        ("symlinked-dir", format!("rm -rf sub && ln -s {} sub", outside.display()), "lies outside the work directory"),
        ("hard-link", format!("mkdir -p sub && ln {}/victim.txt sub/victim.txt", outside.display()), "is a hard link"),
    ] {
        let recipe = serde_json::json!({
            "name": name,
            "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
            "steps": [{"name": "s", "stage": "command", "inputs": {"f": "raw"},
                       "params": {"argv": ["sh", "-c", script, "sh", "{input:f}"],
                                  "outputs": {"o": {"path": "sub/victim.txt", "kind": "x"}}}}]
        });
        let path = dir.path().join(format!("{name}.json"));
        write(&path, &serde_json::to_string(&recipe).unwrap());
        let out = sst1mflow(&store, &["run", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
        // The outside file is where it was, writable and unchanged; nothing was published.
        let victim = outside.join("victim.txt");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "outside file", "{name}");
        assert!(!std::fs::metadata(&victim).unwrap().permissions().readonly(), "{name}");
        assert_eq!(object_count(&store), 0, "{name}: nothing is in the store (the raw input is read in place)");
    }
}

#[test]
fn out_of_range_extraction_and_cleaning_settings_are_refused_at_planning() {
    let dir = TempDir::new("ranges");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json"))
            .unwrap(),
    )
    .unwrap();
    let recipe = dir.path().join("r.json");
    write(
        &recipe,
        r#"{"name": "ranges", "config": "c.json",
            "steps": [{"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 5, "seed": 1}},
                      {"name": "dl1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1"}}]}"#,
    );
    let store = dir.path().join("store");
    let window = "/CameraCalibrator/LocalPeakWindowSum";
    let cleaner = "/ImageProcessor/ImageCleanerSST/telescope_defaults/tel_001/0";
    let cases: [(&str, &str, serde_json::Value, &str); 14] = [
        (window, "window_width", serde_json::json!(0), "window_width = 0: must be an integer from 1 to 50"),
        (window, "window_width", serde_json::json!(-1), "window_width = -1"),
        (window, "window_width", serde_json::json!(1e10), "window_width = 10000000000.0"),
        (window, "window_width", serde_json::json!(7.5), "window_width = 7.5"),
        (window, "window_shift", serde_json::json!(1000), "window_shift = 1000: must be an integer from 0 to 49"),
        (window, "window_shift", serde_json::json!(-5), "window_shift = -5"),
        (
            cleaner,
            "picture_threshold_pe",
            serde_json::json!(-1e308),
            "picture_threshold_pe = -1e+308: must be a finite number of at least 0",
        ),
        (
            cleaner,
            "min_picture_neighbors",
            serde_json::json!(1e19),
            "min_picture_neighbors = 1e+19: must be an integer from 0 to 6",
        ),
        (cleaner, "boundary_threshold_pe", serde_json::json!("4"), "boundary_threshold_pe = \"4\""),
        // Type and value errors that used to surface only as a failed activity.
        (
            "/CameraCalibrator",
            "image_extractor_type",
            serde_json::json!("FixedWindowSum"),
            "only \"LocalPeakWindowSum\"",
        ),
        (window, "apply_integration_correction", serde_json::json!("yes"), "must be a boolean"),
        ("/NsbCalibrator", "mc_correction_for_PDE", serde_json::json!("zzz"), "must be a boolean"),
        ("/ImageProcessor", "use_telescope_frame", serde_json::json!(0), "must be a boolean"),
        ("/ImageProcessor/ImageCleanerSST/telescope_defaults", "tel_001", serde_json::json!([]), "non-empty list"),
    ];
    for (section, key, value, expected) in cases {
        let mut config = shipped.clone();
        let slot =
            config.pointer_mut(section).and_then(|s| s.get_mut(key)).unwrap_or_else(|| panic!("{section}/{key}"));
        *slot = value.clone();
        write(&dir.path().join("c.json"), &serde_json::to_string(&config).unwrap());
        let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{key} = {value}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected) && stderr(&out).contains("c.json"),
            "{key} = {value}: {}",
            stderr(&out)
        );
        assert_eq!(object_count(&store), 0, "{key} = {value}: nothing ran");
    }
}

#[test]
fn reading_commands_work_on_a_read_only_store_and_writing_ones_say_why_not() {
    let dir = TempDir::new("ro");
    let mnt = dir.path().join("mnt");
    if !mount_tmpfs(&mnt, 20 * 1024) {
        println!("skipped: cannot mount a tmpfs here (needs root); the read-only store is not tested");
        return;
    }
    let _mounted = Mounted(&mnt);
    let (recipe, store, summary) = finished_run_in(&mnt);
    let remount =
        std::process::Command::new("mount").args(["-o", "remount,ro", mnt.to_str().unwrap()]).status().unwrap();
    assert!(remount.success());
    for args in [
        vec!["lineage", summary.as_str()],
        vec!["show", summary.as_str()],
        vec!["descendants", summary.as_str()],
        vec!["export-prov", summary.as_str()],
        vec!["status"],
        vec!["verify"],
    ] {
        let out = sst1mflow(&store, &args);
        assert!(out.status.success(), "{args:?} on a read-only store: {}", stderr(&out));
    }
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
    let out = sst1mflow(&store, &["pin", "paper", &summary]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
}

#[test]
fn a_confined_command_cannot_write_through_its_inputs_or_outside_its_work_directory() {
    if sst1mflow::engine::confine::abi().is_none() {
        println!("skipped: this kernel offers no Landlock, so \"confine\" cannot be tested here");
        return;
    }
    let dir = TempDir::new("confine");
    write_inputs(dir.path(), 1);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim.txt"), "kept\n").unwrap();
    // Step a makes a store object; step b, confined, tries to append to it through its input
    // link, to write outside, and to use /tmp, then writes its output and a temporary file.
    let attempts = format!(
        "echo x >> \"$1\"; echo \"through $?\"; echo y >> {o}/victim.txt; echo \"outside $?\"; echo t > \"$TMPDIR/t\"; echo \"tmpdir $?\"; echo done > out.txt",
        o = outside.display()
    );
    let recipe = |confine: serde_json::Value| {
        serde_json::json!({
            "name": "confine",
            "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
            "steps": [
                {"name": "a", "stage": "command", "inputs": {"f": "raw"},
                 "params": {"argv": ["cp", "{input:f}", "{output:o}"], "outputs": {"o": "a.txt"}}},
                {"name": "b", "stage": "command", "inputs": {"f": "a.o"},
                 "params": {"argv": ["sh", "-c", attempts, "sh", "{input:f}"], "stdout": "log", "confine": confine,
                            "outputs": {"o": "out.txt", "log": "attempts.txt"}}}]
        })
    };
    let path = dir.path().join("confine.json");
    write(&path, &serde_json::to_string(&recipe(true.into())).unwrap());
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &path, &[]);
    assert_eq!(code, 0, "{err}");
    let said = std::fs::read_to_string(view_target(&store, "confine/b/all/attempts.txt")).unwrap();
    assert!(!said.contains("through 0") && !said.contains("outside 0") && said.contains("tmpdir 0"), "{said}");
    assert_eq!(std::fs::read_to_string(outside.join("victim.txt")).unwrap(), "kept\n");
    assert_eq!(std::fs::read_to_string(view_target(&store, "confine/a/all/a.txt")).unwrap(), "run 0\nalpha beta 0\n");
    let key = report["activities"][1]["key"].as_str().unwrap().to_string();
    let log = stdout(&sst1mflow(&store, &["log", &key[..16]]));
    assert!(log.contains("# confined (Landlock ABI"), "{log}");
    let verify = sst1mflow(&store, &["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    // Not a boolean: refused at planning, nothing run.
    write(&path, &serde_json::to_string(&recipe("yes".into())).unwrap());
    let (code, _, err) = run_json(&store, &path, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"confine\" must be true or false"), "{err}");
}

#[test]
fn reading_commands_work_on_a_full_disk_and_writing_ones_say_no_space_left() {
    let dir = TempDir::new("full");
    let mnt = dir.path().join("mnt");
    if !mount_tmpfs(&mnt, 20 * 1024) {
        println!("skipped: cannot mount a tmpfs here (needs root); the full disk is not tested");
        return;
    }
    let _mounted = Mounted(&mnt);
    let (recipe, store, summary) = finished_run_in(&mnt);
    // Fill the disk to the last block, as a runaway job would.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 1 << 16];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    let mut small = vec![7u8; 512];
    while !small.is_empty() {
        if std::io::Write::write_all(&mut f, &small).is_err() {
            small.truncate(small.len() / 2);
        }
    }
    drop(f);
    for args in [
        vec!["lineage", summary.as_str()],
        vec!["show", summary.as_str()],
        vec!["descendants", summary.as_str()],
        vec!["export-prov", summary.as_str()],
        vec!["status"],
        vec!["verify", "--quick"],
    ] {
        let out = sst1mflow(&store, &args);
        assert!(out.status.success(), "{args:?} on a full disk: {}", stderr(&out));
    }
    // A run with something to do says why it cannot.
    std::fs::write(mnt.join("inputs/in_00.txt"), "changed\n").unwrap_or_default();
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).to_lowercase().contains("no space left"), "{}", stderr(&out));
    // Space again: the run does its work and the store is clean.
    std::fs::remove_file(&filler).unwrap();
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "after the disk is freed: {err}");
    let out = sst1mflow(&store, &["verify"]);
    assert!(out.status.success(), "after the disk is freed: {}", stdout(&out));
}
