//! Provenance you can ask: lineage, descendants, show, status, diff, invalidate, gc, pin,
//! verify, rebuild-db, reproduce — driven through the real binary.
mod common;
use common::*;
use std::path::Path;

fn setup(tag: &str, n: usize) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = TempDir::new(tag);
    let recipe = three_step_recipe(dir.path(), n);
    let store = dir.path().join("store");
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    (dir, recipe, store)
}

#[test]
fn lineage_finds_a_product_by_hash_prefix_path_view_or_outside_copy() {
    let (dir, _, store) = setup("lineage", 3);
    let object = view_target(&store, "three/summary/all/n.txt");
    let hash = hash_of(&object);
    let copy = dir.path().join("copy-of-n.txt");
    std::fs::copy(&object, &copy).unwrap();
    let view = store.join("views/three/summary/all/n.txt");
    let reference = json_ok(&store, &["lineage", &hash]);
    for target in [&hash[..8], object.to_str().unwrap(), view.to_str().unwrap(), copy.to_str().unwrap()] {
        assert_eq!(json_ok(&store, &["lineage", target]), reference, "target {target}");
    }
    // 1 summary + 1 merged + 3 calibrated + 3 raw; 5 activities down to raw inputs.
    assert_eq!(reference["products"].as_object().unwrap().len(), 8);
    assert_eq!(reference["activities"].as_object().unwrap().len(), 5);
    let raw: Vec<_> = reference["products"].as_object().unwrap().values().filter(|p| p["made_by"].is_null()).collect();
    assert_eq!(raw.len(), 3);
    assert!(raw.iter().all(|p| p["kind"] == "r0" && p["metadata"]["tel"] == 21));
    let calib = reference["activities"].as_object().unwrap().values().find(|a| a["config"]["cuts"]["suffix"] == "ok");
    assert!(calib.is_some(), "config subset recorded on the calib activities");

    let text = stdout(&sst1mflow(&store, &["lineage", &hash]));
    assert!(text.contains("config: cuts.suffix=ok") && text.matches("raw input").count() == 3, "{text}");
    let shallow = stdout(&sst1mflow(&store, &["lineage", &hash, "--depth", "1"]));
    assert!(shallow.contains("--depth limit") && !shallow.contains("raw input"), "{shallow}");
    let dot = stdout(&sst1mflow(&store, &["lineage", &hash, "--dot"]));
    assert!(dot.starts_with("digraph provenance {") && dot.matches(" -> ").count() == 3 + 3 + 3 + 1 + 1 + 1, "{dot}");

    // Bad targets: named, non-zero.
    let stranger = dir.path().join("stranger.txt");
    write(&stranger, "not a product");
    let out = sst1mflow(&store, &["lineage", stranger.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("stranger.txt") && stderr(&out).contains("is not a product of the store"));
    let out = sst1mflow(&store, &["lineage", "ffff0000"]);
    assert!(stderr(&out).contains("no product hash starts with ffff0000"));
    let out = sst1mflow(&store, &["lineage", "zz"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn descendants_and_show() {
    let (dir, _, store) = setup("desc", 2);
    let raw = dir.path().join("inputs/in_01.txt");
    let d = json_ok(&store, &["descendants", raw.to_str().unwrap()]);
    // in_01 → its calibrated file → merged → summary.
    assert_eq!(d["products"].as_object().unwrap().len(), 4);
    assert_eq!(d["activities"].as_object().unwrap().len(), 3);
    let text = stdout(&sst1mflow(&store, &["descendants", raw.to_str().unwrap()]));
    assert!(text.contains("as f in command") && text.contains("as parts in command"), "{text}");
    let s = json_ok(&store, &["show", store.join("views/three/merge/all/dl2.txt").to_str().unwrap()]);
    assert_eq!(s["kind"], "dl2");
    assert_eq!(s["made_by"]["stage"], "command");
    assert_eq!(s["made_by"]["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(s["used_by_activities"], 1);
}

/// Pretends one recorded activity came from an older pipeline version, as a store written by
/// an earlier sst1mflow would look (its key differs, since the version is part of it).
fn age_activity(store: &Path, step: &str, item: &str) {
    let conn = rusqlite::Connection::open(store.join("sst1mflow.sqlite")).unwrap();
    let key: String = conn
        .query_row(
            "SELECT activity_key FROM recipe_slots WHERE recipe = 'three' AND step = ?1 AND item = ?2",
            [step, item],
            |r| r.get(0),
        )
        .unwrap();
    let old = format!("{:0>64}", "01d");
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    conn.execute("UPDATE activities SET key = ?2, pipeline_version = '0.0.9+oldcommit' WHERE key = ?1", [&key, &old])
        .unwrap();
    conn.execute("UPDATE reusable SET key = ?2 WHERE key = ?1", [&key, &old]).unwrap();
    conn.execute("UPDATE recipe_slots SET activity_key = ?2 WHERE activity_key = ?1", [&key, &old]).unwrap();
}

#[test]
fn status_says_exactly_why_and_ignores_keys_a_stage_does_not_read() {
    let (dir, recipe, store) = setup("status", 3);
    let r = recipe.to_str().unwrap();
    let st = json_ok(&store, &["status", r]);
    assert_eq!(st[0]["up_to_date"], 5);
    // A key no stage reads: nothing stale.
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 99}}"#);
    let st = json_ok(&store, &["status"]);
    assert_eq!(st[0]["not_up_to_date"].as_array().unwrap().len(), 0, "{st}");
    // A key the calib stage reads: its three activities, with the exact change; downstream follows.
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "new", "unused": 99}}"#);
    let st = json_ok(&store, &["status", r]);
    let items = st[0]["not_up_to_date"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{st}");
    let calib: Vec<_> = items.iter().filter(|i| i["step"] == "calib").collect();
    assert_eq!(calib.len(), 3);
    assert!(calib.iter().all(|i| i["reason"] == "config cuts.suffix: \"ok\" → \"new\"" && i["state"] == "stale"));
    assert!(items.iter().any(|i| i["step"] == "merge" && i["reason"].as_str().unwrap().starts_with("upstream calib/")));
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 99}}"#);
    // Another pipeline version made one activity: reported with both versions.
    age_activity(&store, "calib", "in_00.txt");
    let st = json_ok(&store, &["status", r]);
    let items = st[0]["not_up_to_date"].as_array().unwrap();
    let first = items.iter().find(|i| i["item"] == "in_00.txt").unwrap();
    let reason = first["reason"].as_str().unwrap();
    assert!(reason.starts_with("pipeline version changed: 0.0.9+oldcommit → 0.1.0+"), "{reason}");
    assert_eq!(first["products"], serde_json::json!(["dl1.txt"]));
    // A stage at another algorithm version made another.
    let conn = rusqlite::Connection::open(store.join("sst1mflow.sqlite")).unwrap();
    let key: String = conn
        .query_row("SELECT activity_key FROM recipe_slots WHERE step = 'calib' AND item = 'in_01.txt'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let old = format!("{:0>64}", "5a9e");
    conn.execute("UPDATE activities SET key = ?2, stage_version = '0' WHERE key = ?1", [&key, &old]).unwrap();
    conn.execute("UPDATE reusable SET key = ?2 WHERE key = ?1", [&key, &old]).unwrap();
    conn.execute("UPDATE recipe_slots SET activity_key = ?2 WHERE activity_key = ?1", [&key, &old]).unwrap();
    let st = json_ok(&store, &["status", r]);
    let second = st[0]["not_up_to_date"].as_array().unwrap().iter().find(|i| i["item"] == "in_01.txt").unwrap().clone();
    assert_eq!(second["reason"], "stage version changed: 0 → 1", "{second}");
    // An edited input: named with old and new hashes.
    write(&dir.path().join("inputs/in_02.txt"), "edited\n");
    let st = json_ok(&store, &["status", r]);
    let edited = st[0]["not_up_to_date"].as_array().unwrap().iter().find(|i| i["item"] == "in_02.txt").unwrap().clone();
    assert!(edited["reason"].as_str().unwrap().starts_with("input f changed: "), "{edited}");
}

#[test]
fn rebuild_db_gives_the_same_answers() {
    let (dir, recipe, store) = setup("rebuild", 3);
    let r = recipe.to_str().unwrap();
    // Some history: a config change and re-run, an invalidation and a pin.
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "v2", "unused": 1}}"#);
    assert_eq!(run_json(&store, &recipe, &[]).0, 0);
    let final_product = hash_of(&view_target(&store, "three/summary/all/n.txt"));
    let merged = hash_of(&view_target(&store, "three/merge/all/dl2.txt"));
    json_ok(&store, &["invalidate", &merged, "--reason", "merge bug"]);
    sst1mflow(&store, &["pin", "paper", &final_product]);
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "v3", "unused": 1}}"#);
    let before = (
        json_ok(&store, &["lineage", &final_product]),
        json_ok(&store, &["status", r]),
        json_ok(&store, &["gc"]),
        json_ok(&store, &["pin"]),
    );
    for f in ["sst1mflow.sqlite", "sst1mflow.sqlite-wal", "sst1mflow.sqlite-shm"] {
        let _ = std::fs::remove_file(store.join(f));
    }
    let out = sst1mflow(&store, &["rebuild-db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = (
        json_ok(&store, &["lineage", &final_product]),
        json_ok(&store, &["status", r]),
        json_ok(&store, &["gc"]),
        json_ok(&store, &["pin"]),
    );
    assert_eq!(before.0, after.0, "lineage differs after rebuild-db");
    assert_eq!(before.1, after.1, "status differs after rebuild-db");
    assert_eq!(before.2, after.2, "gc differs after rebuild-db");
    assert_eq!(before.3, after.3);
    assert!(sst1mflow(&store, &["verify"]).status.success());
    // An existing database is not replaced without --force.
    let out = sst1mflow(&store, &["rebuild-db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"));
}

#[test]
fn verify_finds_a_flipped_byte_and_lists_descendants() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, _, store) = setup("flip", 3);
    let calibrated = view_target(&store, "three/calib/in_01.txt/dl1.txt");
    let merged = hash_of(&view_target(&store, "three/merge/all/dl2.txt"));
    let summary = hash_of(&view_target(&store, "three/summary/all/n.txt"));
    std::fs::set_permissions(&calibrated, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&calibrated).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&calibrated, bytes).unwrap();
    let out = sst1mflow(&store, &["--json", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(problems.contains(&hash_of(&calibrated)) && problems.contains("is corrupt"), "{problems}");
    let desc: Vec<&str> = v["descendants_of_damaged"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert_eq!(desc, {
        let mut d = vec![merged.as_str(), summary.as_str()];
        d.sort();
        d
    });
    let text = stdout(&sst1mflow(&store, &["verify"]));
    assert!(text.contains("NOT CLEAN") && text.contains("derived from damaged products (2)"), "{text}");
}

#[test]
fn invalidate_then_run_rebuilds_exactly_those() {
    let (dir, recipe, store) = setup("inval", 3);
    let calibrated = hash_of(&view_target(&store, "three/calib/in_01.txt/dl1.txt"));
    let dry = json_ok(&store, &["invalidate", &calibrated, "--dry-run"]);
    assert_eq!(dry["activities"].as_array().unwrap().len(), 3, "calib/in_01, merge, summary");
    assert_eq!(json_ok(&store, &["status"])[0]["up_to_date"], 5, "a dry run changes nothing");
    json_ok(&store, &["invalidate", &calibrated, "--reason", "bad calibration"]);
    let shown = json_ok(&store, &["show", &calibrated]);
    assert!(shown["invalid"].as_str().unwrap().starts_with("bad calibration"));
    let st = json_ok(&store, &["status"]);
    let items = st[0]["not_up_to_date"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["reason"].as_str().unwrap().starts_with("invalidated: bad calibration")), "{st}");
    let (code, report, _) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0);
    assert_eq!((report["ran"].as_u64(), report["reused"].as_u64()), (Some(3), Some(2)));
    assert!(json_ok(&store, &["show", &calibrated])["invalid"].is_null(), "re-run makes it valid again");
    assert!(sst1mflow(&store, &["verify"]).status.success());

    // By stage, and by pipeline version.
    let by_stage = json_ok(&store, &["invalidate", "--stage", "command", "--dry-run"]);
    assert!(by_stage["activities"].as_array().unwrap().len() >= 5);
    let out = sst1mflow(&store, &["invalidate", "--pipeline-version", "9.9.9+nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("versions seen: 0.1.0+"), "{}", stderr(&out));
    let version = stdout(&sst1mflow(&store, &["version"])).trim().to_string();
    let all = json_ok(&store, &["invalidate", "--pipeline-version", &version]);
    assert!(all["activities"].as_array().unwrap().len() >= 5);
    let (_, report, _) = run_json(&store, &recipe, &[]);
    assert_eq!(report["ran"], 5);

    // An invalidated raw input is refused until it is replaced.
    let raw = dir.path().join("inputs/in_00.txt");
    json_ok(&store, &["invalidate", raw.to_str().unwrap(), "--reason", "wrong run"]);
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("in_00.txt") && err.contains("was invalidated: wrong run"), "{err}");
    write(&raw, "run 0 replaced\n");
    assert_eq!(run_json(&store, &recipe, &[]).0, 0);
}

#[test]
fn gc_keeps_recipe_outputs_and_pinned_lineages() {
    let (dir, recipe, store) = setup("gc", 2);
    let old_final = hash_of(&view_target(&store, "three/summary/all/n.txt"));
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "v2", "unused": 1}}"#);
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    // The v1 calibrated files, merge and summary are no longer needed: 4 products.
    let gc = json_ok(&store, &["gc"]);
    assert_eq!(gc["products"].as_array().unwrap().len(), 4, "{gc}");
    assert!(sst1mflow(&store, &["pin", "paper-2026", &old_final]).status.success());
    assert_eq!(json_ok(&store, &["gc"])["products"].as_array().unwrap().len(), 0);
    assert!(sst1mflow(&store, &["unpin", "paper-2026"]).status.success());
    let deleted = json_ok(&store, &["gc", "--delete"]);
    assert_eq!(deleted["products"].as_array().unwrap().len(), 4);
    assert!(!store.join("objects").join(&old_final[..2]).join(&old_final).exists());
    assert!(sst1mflow(&store, &["verify"]).status.success(), "gc leaves a clean store");
    // Lineage of a deleted product still answers, and says it was deleted.
    let l = json_ok(&store, &["lineage", &old_final]);
    assert_eq!(l["products"][&old_final]["collected"], true);
    // Going back to the old config recomputes what gc deleted.
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 1}}"#);
    let (code, report, _) = run_json(&store, &recipe, &[]);
    assert_eq!((code, report["ran"].as_u64()), (0, Some(4)));
    assert!(store.join("objects").join(&old_final[..2]).join(&old_final).exists());
}

#[test]
fn diff_names_the_config_key_and_the_input_that_differ() {
    let (dir, recipe, store) = setup("diff", 2);
    let a = hash_of(&view_target(&store, "three/summary/all/n.txt"));
    let a_merged = hash_of(&view_target(&store, "three/merge/all/dl2.txt"));
    write(&dir.path().join("config.json"), r#"{"cuts": {"suffix": "v2", "unused": 1}}"#);
    write(&dir.path().join("inputs/in_01.txt"), "edited\n");
    assert_eq!(run_json(&store, &recipe, &[]).0, 0);
    let b_merged = hash_of(&view_target(&store, "three/merge/all/dl2.txt"));
    let d = json_ok(&store, &["diff", &a_merged, &b_merged]);
    let diffs = d["differences"].as_array().unwrap();
    let config: Vec<_> = diffs.iter().filter(|x| x["what"] == "config cuts.suffix").collect();
    assert_eq!(config.len(), 2, "{d}");
    assert!(config.iter().all(|x| x["a"] == "ok" && x["b"] == "v2"));
    assert!(diffs.iter().any(|x| x["path"] == "product ← parts[1] ← f[0]" && x["what"] == "content"));
    let text = stdout(&sst1mflow(&store, &["diff", &a, &a]));
    assert!(text.contains("identical"), "{text}");
}

#[test]
fn reproduce_confirms_bit_identity_and_names_the_first_stage_that_differs() {
    let (dir, _, store) = setup("repro", 3);
    let target = store.join("views/three/summary/all/n.txt");
    let r = json_ok(&store, &["reproduce", target.to_str().unwrap()]);
    assert_eq!(r["reproduced"], true);
    assert_eq!(r["rows"].as_array().unwrap().len(), 5);
    assert_eq!(r["raw_inputs"], 3);
    // A step that stamps the time cannot reproduce: it is named.
    let recipe = dir.path().join("stamp.json");
    write(
        &recipe,
        r#"{"name": "stamp", "inputs": {"raw": {"paths": "inputs/in_00.txt"}},
            "steps": [{"name": "copy", "stage": "command", "inputs": {"f": "raw"},
                       "params": {"argv": ["cat", "{input:f}"], "stdout": "o", "outputs": {"o": "o.txt"}}},
                      {"name": "stamp", "stage": "command", "inputs": {"f": "copy.o"},
                       "params": {"argv": ["date", "+%s%N"], "stdout": "o", "outputs": {"o": "stamped.txt"}}}]}"#,
    );
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let stamped = store.join("views/stamp/stamp/all/stamped.txt");
    let out = sst1mflow(&store, &["reproduce", stamped.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("DIFFERS") && text.contains("NOT REPRODUCED: bytes first differ at stage command"), "{text}");
    assert!(text.lines().filter(|l| l.contains("identical")).count() == 1, "the copy step reproduced: {text}");
}

#[test]
fn a_modified_copy_is_traced_by_its_embedded_activity_key_and_verify_checks_embedded_keys() {
    let dir = TempDir::new("embedded");
    write_inputs(dir.path(), 1);
    let recipe = dir.path().join("r.json");
    write(
        &recipe,
        r#"{"name": "emb", "inputs": {"raw": {"paths": "inputs/in_00.txt"}},
            "steps": [{"name": "dl3", "stage": "command", "inputs": {"f": "raw"},
                       "params": {"argv": ["sh", "-c", "echo \"sst1mflow_activity_key=$SST1MFLOW_ACTIVITY_KEY\"; cat \"$1\"", "dl3", "{input:f}"],
                                  "stdout": "o", "outputs": {"o": "events.fits"}}}]}"#,
    );
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let key = report["activities"][0]["key"].as_str().unwrap().to_string();
    let product = view_target(&store, "emb/dl3/all/events.fits");
    let text = std::fs::read_to_string(&product).unwrap();
    assert!(text.starts_with(&format!("sst1mflow_activity_key={key}\n")), "{text}");
    // A copy someone edited: no longer byte-identical, still traceable.
    let copy = dir.path().join("edited-copy.fits");
    write(&copy, &format!("{text}appended by a user\n"));
    let out = sst1mflow(&store, &["--json", "lineage", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("matches no product byte for byte") && stderr(&out).contains(&key));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l["target"], hash_of(&product));
    assert!(sst1mflow(&store, &["verify"]).status.success());

    // A product whose embedded key belongs to no activity in its lineage is reported.
    let foreign = "a".repeat(64);
    let bad = dir.path().join("bad.json");
    write(
        &bad,
        &format!(
            r#"{{"name": "bad", "inputs": {{"raw": {{"paths": "inputs/in_00.txt"}}}},
                "steps": [{{"name": "s", "stage": "command", "inputs": {{"f": "raw"}},
                           "params": {{"argv": ["echo", "sst1mflow_activity_key={foreign}"], "stdout": "o", "outputs": {{"o": "o.txt"}}}}}}]}}"#
        ),
    );
    assert_eq!(run_json(&store, &bad, &[]).0, 0);
    let v = sst1mflow(&store, &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        stdout(&v).contains(&format!("embeds activity key {foreign}, which is not in its recorded lineage")),
        "{}",
        stdout(&v)
    );
    // A file carrying no key and matching nothing is refused by name.
    let out = sst1mflow(&store, &["show", dir.path().join("inputs/../r.json").to_str().unwrap()]);
    assert!(stderr(&out).contains("carries no sst1mflow activity key"), "{}", stderr(&out));
}
