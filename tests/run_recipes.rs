//! `sst1mflow run`: reuse, fan-out, config-subset keys, failures and bad input.
mod common;
use common::*;
use serde_json::json;

/// A three-step recipe over the files of `dir/inputs`: per-file transform, gather, summary.
fn pipeline_recipe(dir: &std::path::Path, upper_cmd: serde_json::Value) -> std::path::PathBuf {
    write(&dir.join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 1}}"#);
    let recipe = json!({
        "config": "config.json",
        "inputs": {"raw": {"paths": ["inputs/*.txt"], "kind": "r0"}},
        "steps": [
            {"name": "upper", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
             "params": {"argv": upper_cmd, "stdout": "out", "outputs": {"out": "upper.txt"}}},
            {"name": "join", "stage": "command", "inputs": {"parts": "upper.out"},
             "params": {"argv": ["cat", "{input:parts}"], "stdout": "all", "outputs": {"all": "all.txt"}}},
            {"name": "tag", "stage": "command", "inputs": {"all": "join.all"},
             "params": {"argv": ["sh", "-c", "wc -l < \"$1\" > n.txt; echo {config:cuts.suffix} >> n.txt", "tag", "{input:all}"],
                        "outputs": {"n": "n.txt"}}}
        ]
    });
    let path = dir.join("recipe.json");
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    path
}

#[test]
fn reruns_reuse_everything_and_config_keys_are_scoped() {
    let dir = TempDir::new("reuse");
    write_inputs(dir.path(), 5);
    let recipe = pipeline_recipe(dir.path(), json!(["sh", "-c", "tr a-z A-Z < \"$1\"", "upper", "{input:f}"]));
    let store = dir.path().join("store");
    let (code, first, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first["ran"], 7);
    let hashes = output_hashes(&first);
    assert_eq!(hashes.len(), 7);
    let all = std::fs::read_to_string(store.join("views/recipe/join/all/all.txt")).unwrap();
    assert!(all.starts_with("RUN 0\nALPHA BETA 0\nRUN 1"), "{all}");

    let (code, second, _) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0);
    assert_eq!((second["ran"].as_u64(), second["reused"].as_u64()), (Some(0), Some(7)));
    assert_eq!(output_hashes(&second), hashes);

    // A config key no stage reads changes nothing.
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 2}}"#);
    let (_, third, _) = run_json(&store, &recipe, &["--dry-run"]);
    assert_eq!(third["would_run"], 0);
    // A key the last stage reads reruns exactly that stage, and says why.
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "changed", "unused": 2}}"#);
    let (_, dry, _) = run_json(&store, &recipe, &["--dry-run"]);
    assert_eq!(dry["would_run"], 1);
    let act = dry["activities"].as_array().unwrap().iter().find(|a| a["outcome"] == "would-run").unwrap();
    assert_eq!(act["step"], "tag");
    assert_eq!(act["reason"], "config cuts.suffix: \"ok\" → \"changed\"");
    let (code, fourth, _) = run_json(&store, &recipe, &[]);
    assert_eq!((code, fourth["ran"].as_u64()), (0, Some(1)));

    // Touching an input (same bytes) is not a change; editing one reruns its branch.
    let f = dir.path().join("inputs/in_02.txt");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes).unwrap();
    let (_, dry, _) = run_json(&store, &recipe, &["--dry-run"]);
    assert_eq!(dry["would_run"], 0);
    std::fs::write(&f, b"run 2 edited\n").unwrap();
    let (_, dry, _) = run_json(&store, &recipe, &["--dry-run"]);
    assert_eq!(dry["would_run"], 3, "{dry}");
    let reason = dry["activities"][2]["reason"].as_str().unwrap();
    assert!(reason.starts_with("input f changed:"), "{reason}");

    // Raw inputs are read in place: the edited file's old bytes are gone, and verify says so
    // (naming the file) until a run registers the new bytes.
    let out = sst1mflow(&store, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("in_02.txt") && stdout(&out).contains("modified in place"), "{}", stdout(&out));
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let out = sst1mflow(&store, &["verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("replaced in place"), "{}", stdout(&out));
}

#[test]
fn a_failed_activity_does_not_stop_independent_branches() {
    let dir = TempDir::new("fail");
    write_inputs(dir.path(), 4);
    // in_02 makes the per-file command fail.
    let recipe = pipeline_recipe(
        dir.path(),
        json!(["sh", "-c", "grep -q 'run 2' \"$1\" && { echo boom >&2; exit 3; }; cat \"$1\"", "x", "{input:f}"]),
    );
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &["-j", "2"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(report["failed"], 1);
    assert_eq!(report["ran"], 3);
    assert_eq!(report["skipped"], 2);
    assert!(err.contains("FAILED upper/in_02.txt: command \"sh\" exited with status 3"), "{err}");
    // The log is captured and retrievable.
    let failed = report["activities"].as_array().unwrap().iter().find(|a| a["outcome"] == "failed").unwrap();
    let key = failed["key"].as_str().unwrap();
    let log = sst1mflow(&store, &["log", &key[..10]]);
    assert!(log.status.success());
    assert!(stdout(&log).contains("boom"), "{}", stdout(&log));
    // The failure is recorded, with no output.
    let conn = rusqlite::Connection::open(store.join("sst1mflow.sqlite")).unwrap();
    let (status, outputs): (String, i64) = conn
        .query_row(
            "SELECT status, (SELECT count(*) FROM generated g WHERE g.activity_id = a.id) FROM activities a WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), outputs), ("failed", 0));
    // Fixing nothing and re-running says why it runs again.
    let (_, dry, _) = run_json(&store, &recipe, &["--dry-run"]);
    let again = dry["activities"].as_array().unwrap().iter().find(|a| a["item"] == "in_02.txt").unwrap();
    assert_eq!(again["reason"], "previous attempt failed");
}

#[test]
fn a_command_that_writes_no_declared_output_fails_cleanly() {
    let dir = TempDir::new("noout");
    write_inputs(dir.path(), 1);
    let recipe = dir.path().join("r.json");
    write(
        &recipe,
        r#"{"inputs": {"raw": {"paths": "inputs/in_00.txt"}},
            "steps": [{"name": "s", "stage": "command", "inputs": {"x": "raw"},
                       "params": {"argv": ["true"], "outputs": {"dl1": "dl1.h5"}}},
                      {"name": "link", "stage": "command", "inputs": {"x": "raw"},
                       "params": {"argv": ["ln", "-s", "/etc/hostname", "dl1.h5"], "outputs": {"dl1": "dl1.h5"}}}]}"#,
    );
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 1);
    assert_eq!(report["failed"], 2);
    assert!(err.contains("wrote no declared output \"dl1\" (dl1.h5)"), "{err}");
    assert!(err.contains("is a symlink"), "{err}");
    // Only the raw input is registered, read in place (nothing in the store).
    assert_eq!(db_counts(&store).0, 1);
    assert_eq!(object_count(&store), 0);
}

/// Runs a broken recipe against a fresh store: must exit non-zero, name the problem, register
/// nothing.
fn assert_refused(dir: &TempDir, recipe_text: &str, expected: &[&str]) {
    let recipe = dir.path().join("bad.json");
    write(&recipe, recipe_text);
    let store = dir.path().join("store-bad");
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    assert_eq!(db_counts(&store), (0, 0), "something was registered for: {err}");
    assert_eq!(object_count(&store), 0);
}

#[test]
fn bad_recipes_are_refused_with_the_file_and_the_problem() {
    let dir = TempDir::new("bad");
    write_inputs(dir.path(), 2);
    write(&dir.path().join("c.json"), r#"{"cuts": {"min_intensity": 50}}"#);
    let step = r#"{"name": "s", "stage": "command", "inputs": {"x": "raw"}, "foreach": "x",
                   "params": {"argv": ["cp", "{input:x}", "o"], "outputs": {"o": "o"}}}"#;
    assert_refused(&dir, "{\"steps\": [", &["bad.json", "not valid JSON", "line 1"]);
    assert_refused(
        &dir,
        &format!(r#"{{"inptus": {{}}, "steps": [{step}]}}"#),
        &["bad.json", "unknown key \"inptus\"", "did you mean \"inputs\""],
    );
    assert_refused(
        &dir,
        &format!(r#"{{"inputs": {{"raw": {{"paths": ["inputs/in_*.txt"], "knd": "r0"}}}}, "steps": [{step}]}}"#),
        &["inputs.raw", "unknown key \"knd\"", "did you mean \"kind\""],
    );
    assert_refused(
        &dir,
        r#"{"inputs": {"raw": {"paths": ["inputs/missing.txt"]}}, "steps": []}"#,
        &["inputs.raw", "missing.txt does not exist"],
    );
    assert_refused(
        &dir,
        r#"{"inputs": {"raw": {"paths": "inputs/*.fits"}}, "steps": [{"name": "s", "stage": "command"}]}"#,
        &["pattern \"inputs/*.fits\" matches no file"],
    );
    assert_refused(
        &dir,
        r#"{"config": "c.json", "inputs": {"raw": {"paths": "inputs/*.txt"}},
            "steps": [{"name": "s", "stage": "command", "inputs": {"x": "raw"},
                       "params": {"argv": ["echo", "{config:cuts.min_intensty}"], "outputs": {"o": "o"}, "stdout": "o"}}]}"#,
        &["c.json", "config key \"cuts.min_intensty\"", "did you mean \"min_intensity\""],
    );
    assert_refused(
        &dir,
        r#"{"config": "nope.json", "steps": [{"name": "s", "stage": "command", "params": {"argv": ["true"], "outputs": {"o": "o"}}}]}"#,
        &["cannot read config", "nope.json"],
    );
    assert_refused(
        &dir,
        r#"{"inputs": {"raw": {"paths": "inputs/*.txt"}},
            "steps": [{"name": "s", "stage": "command", "inputs": {"x": "raw"},
                       "params": {"argv": ["true"], "outputs": {"o": "../escape.txt"}}}]}"#,
        &["output \"o\" path \"../escape.txt\"", "inside the activity's work directory"],
    );
    assert_refused(
        &dir,
        r#"{"inputs": {"raw": {"paths": "inputs/*.txt"}},
            "steps": [{"name": "a", "stage": "command", "inputs": {"x": "raw"}, "params": {"argv": ["true"], "outputs": {"dl1": "o"}}},
                      {"name": "b", "stage": "command", "inputs": {"x": "a.dl2"}, "params": {"argv": ["true"], "outputs": {"o": "o"}}}]}"#,
        &["step \"a\" has no output \"dl2\"", "did you mean \"dl1\""],
    );
    let out = sst1mflow(&dir.path().join("s"), &["run", dir.path().join("absent.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read recipe") && stderr(&out).contains("absent.json"));
}

#[test]
fn an_unwritable_store_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("ro");
    write_inputs(dir.path(), 1);
    let recipe = pipeline_recipe(dir.path(), json!(["cat", "{input:f}"]));
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("tmp")).unwrap();
    std::fs::set_permissions(store.join("tmp"), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits; a read-only bind is not available here, so emulate with
    // a store path under a regular file instead when running as root.
    let is_root = std::fs::File::create(store.join("tmp").join("probe")).is_ok();
    let target = if is_root {
        let file = dir.path().join("plainfile");
        std::fs::write(&file, b"").unwrap();
        file.join("store")
    } else {
        store.clone()
    };
    let out = sst1mflow(&target, &["run", recipe.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&target.display().to_string()), "{err}");
    assert!(err.contains("cannot create store directory") || err.contains("is not writable"), "{err}");
}

#[test]
fn a_relative_store_path_works_from_any_directory() {
    let dir = TempDir::new("relstore");
    write_inputs(dir.path(), 2);
    let recipe = pipeline_recipe(dir.path(), json!(["cp", "{input:f}", "upper.txt"]));
    let text = std::fs::read_to_string(&recipe).unwrap().replace("\"stdout\": \"out\",", "");
    write(&recipe, &text);
    let out = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args(["--store", "relative-store", "run", "recipe.json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("4 ran"), "{}", stdout(&out));
    assert!(dir.path().join("relative-store/views/recipe/join/all/all.txt").exists());
}
