//! Real data volumes: raw inputs read where they are, recomputable outputs deleted once
//! consumed and remade to their recorded hash, and the disk a run holds at once.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn recipe_file(dir: &Path, name: &str, recipe: Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    path
}

/// Per-file transform and a gather over the named input files (listed, not globbed, so a
/// deleted one is an error naming it).
fn in_place_recipe(dir: &Path, files: &[&str], copy: bool) -> PathBuf {
    let paths: Vec<String> = files.iter().map(|f| format!("inputs/{f}")).collect();
    recipe_file(
        dir,
        if copy { "copied" } else { "in-place" },
        json!({
            "inputs": {"raw": {"paths": paths, "kind": "r0", "copy": copy}},
            "steps": [
                {"name": "upper", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
                 "params": {"argv": ["sh", "-c", "tr a-z A-Z < \"$1\"", "upper", "{input:f}"],
                            "stdout": "out", "outputs": {"out": "upper.txt"}}},
                {"name": "join", "stage": "command", "inputs": {"parts": "upper.out"},
                 "params": {"argv": ["cat", "{input:parts}"], "stdout": "all", "outputs": {"all": "all.txt"}}}
            ]
        }),
    )
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

fn object_exists(store: &Path, hash: &str) -> bool {
    store.join("objects").join(&hash[..2]).join(hash).is_file()
}

#[test]
fn raw_inputs_are_read_in_place_and_changes_to_them_are_tracked() {
    let dir = TempDir::new("inplace");
    write_inputs(dir.path(), 3);
    let files = ["in_00.txt", "in_01.txt", "in_02.txt"];
    let recipe = in_place_recipe(dir.path(), &files, false);
    let store = dir.path().join("store");
    let (code, first, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let in_01 = std::fs::canonicalize(dir.path().join("inputs/in_01.txt")).unwrap();
    let old_raw = sha256(&in_01);
    // Nothing of the raw files is copied, moved or made read-only.
    assert_eq!(object_count(&store), 4, "three transforms and a gather, no raw file");
    assert!(!object_exists(&store, &old_raw));
    assert_eq!(std::fs::metadata(&in_01).unwrap().permissions().mode() & 0o222, 0o222 & 0o644);
    let old_all = output_hashes(&first)["join/all/all"].clone();

    // Lineage names the place of each raw file; verify (full and quick) re-checks them.
    let lineage = stdout(&sst1mflow(&store, &["lineage", &old_all]));
    assert!(lineage.contains(&format!("read in place at {}", in_01.display())), "{lineage}");
    let show = json_ok(&store, &["show", &old_raw]);
    assert_eq!(show["places"], json!([in_01.to_string_lossy()]), "{show}");
    assert_eq!(show["stored"], json!(false));
    for args in [&["--json", "verify"][..], &["--json", "verify", "--quick"][..]] {
        let v = sst1mflow(&store, args);
        let report: Value = serde_json::from_slice(&v.stdout).unwrap();
        assert!(v.status.success(), "{report}");
        assert_eq!(report["referenced_checked"], 3);
    }

    // Changed in place: a new product; exactly its branch reruns, saying why.
    std::fs::write(&in_01, "run 1 edited in place\n").unwrap();
    let (code, second, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(second["ran"], 2, "{second}");
    let upper = second["activities"].as_array().unwrap().iter().find(|a| a["item"] == "in_01.txt").unwrap();
    assert!(upper["reason"].as_str().unwrap().starts_with("input f changed:"), "{upper}");
    // The old result keeps its lineage: the path and the old bytes' hash.
    let lineage = json_ok(&store, &["lineage", &old_all]);
    let old = &lineage["products"][&old_raw];
    assert_eq!(old["places"], json!([in_01.to_string_lossy()]), "{lineage}");
    // Verify: the old bytes were replaced by registered ones (a notice, not damage).
    let v = sst1mflow(&store, &["verify"]);
    assert!(v.status.success(), "{}", stdout(&v));
    assert!(stdout(&v).contains("was replaced in place by registered bytes"), "{}", stdout(&v));
    // Reproducing the old result needs the old bytes: refused, naming the file.
    let r = sst1mflow(&store, &["reproduce", &old_all]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains(&format!("{} now holds other bytes", in_01.display())), "{}{}", stdout(&r), stderr(&r));
    // The current result reproduces from the files where they are.
    let new_all = output_hashes(&second)["join/all/all"].clone();
    let r = sst1mflow(&store, &["reproduce", &new_all]);
    assert!(r.status.success(), "{}{}", stdout(&r), stderr(&r));

    // Deleted: verify names it and what was made from it; a run refuses naming it.
    let in_02 = std::fs::canonicalize(dir.path().join("inputs/in_02.txt")).unwrap();
    let raw_02 = sha256(&in_02);
    std::fs::remove_file(&in_02).unwrap();
    let v = sst1mflow(&store, &["--json", "verify", "--quick"]);
    assert_eq!(v.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&v.stdout).unwrap();
    let problems = report["problems"].to_string();
    assert!(problems.contains(&format!("{} (sha256 {raw_02}) is missing", in_02.display())), "{problems}");
    let derived: Vec<&str> =
        report["descendants_of_damaged"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert!(derived.contains(&new_all.as_str()) && derived.contains(&old_all.as_str()), "{report}");
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("in_02.txt") && err.contains("does not exist"), "{err}");
}

#[test]
fn an_input_set_can_ask_to_be_copied_into_the_store() {
    let dir = TempDir::new("copied");
    write_inputs(dir.path(), 2);
    let recipe = in_place_recipe(dir.path(), &["in_00.txt", "in_01.txt"], true);
    let store = dir.path().join("store");
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    let in_00 = dir.path().join("inputs/in_00.txt");
    let raw = sha256(&in_00);
    assert!(object_exists(&store, &raw), "copied into the store");
    assert_eq!(object_count(&store), 2 + 2 + 1);
    // The copy survives the original.
    std::fs::remove_file(&in_00).unwrap();
    let v = sst1mflow(&store, &["verify"]);
    assert!(v.status.success(), "{}", stdout(&v));
    let show = json_ok(&store, &["show", &raw]);
    assert_eq!(show["stored"], json!(true), "{show}");
}

/// `make` (recomputable) per input, `use` per make output; `use_cmd` varies to force reruns.
fn recomputable_recipe(dir: &Path, name: &str, make_cmd: &str, use_cmd: &str) -> PathBuf {
    recipe_file(
        dir,
        name,
        json!({
            "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
            "steps": [
                {"name": "make", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f", "recomputable": true,
                 "params": {"argv": ["sh", "-c", make_cmd, "make", "{input:f}"], "outputs": {"big": "big.txt"}}},
                {"name": "use", "stage": "command", "inputs": {"b": "make.big"}, "foreach": "b",
                 "params": {"argv": ["sh", "-c", use_cmd, "use", "{input:b}"], "outputs": {"small": "small.txt"}}}
            ]
        }),
    )
}

#[test]
fn recomputable_outputs_are_deleted_once_consumed_and_remade_to_their_recorded_hash() {
    let dir = TempDir::new("recomp");
    write_inputs(dir.path(), 3);
    let make = "cat \"$1\" > big.txt; seq 1 20000 >> big.txt";
    let v1 = recomputable_recipe(dir.path(), "v1", make, "cksum < \"$1\" > small.txt");
    let store = dir.path().join("store");
    let (code, first, err) = run_json(&store, &v1, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first["ran"], 6);
    let hashes = output_hashes(&first);
    let bigs: Vec<&String> = hashes.iter().filter(|(k, _)| k.starts_with("make/")).map(|(_, h)| h).collect();
    assert_eq!(bigs.len(), 3);
    for h in &bigs {
        assert!(!object_exists(&store, h), "a consumed recomputable output is deleted");
    }
    assert_eq!(object_count(&store), 3, "only the consumers' outputs stay");
    assert!(!store.join("views/v1/make/in_00.txt/big.txt").exists());
    assert!(store.join("views/v1/use/in_00.txt/small.txt").exists());
    // Status: up to date, and says which outputs are recomputable; verify is clean.
    let status = json_ok(&store, &["status", v1.to_str().unwrap()]);
    assert_eq!(status[0]["not_up_to_date"], json!([]), "{status}");
    assert_eq!(status[0]["recomputable"].as_array().unwrap().len(), 3, "{status}");
    let text = stdout(&sst1mflow(&store, &["status", v1.to_str().unwrap()]));
    assert!(text.contains("recomputable 3"), "{text}");
    let v = json_ok(&store, &["verify"]);
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["recomputable_absent"], 3, "{v}");
    let shown = json_ok(&store, &["show", bigs[0]]);
    assert_eq!((shown["recomputable"].clone(), shown["stored"].clone()), (json!(true), json!(false)));

    // Nothing needs them: a rerun remakes nothing.
    let (code, again, _) = run_json(&store, &v1, &[]);
    assert_eq!(code, 0);
    assert_eq!((again["ran"].clone(), again["recomputed"].clone()), (json!(0), json!(0)), "{again}");

    // A changed consumer needs them: each is remade, with its recorded hash, then deleted again.
    let v2 = recomputable_recipe(dir.path(), "v2", make, "md5sum < \"$1\" > small.txt");
    let (code, second, err) = run_json(&store, &v2, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((second["ran"].clone(), second["recomputed"].clone()), (json!(3), json!(3)), "{second}");
    for (k, h) in output_hashes(&second).iter().filter(|(k, _)| k.starts_with("make/")) {
        assert_eq!(&hashes[k], h);
        assert!(!object_exists(&store, h));
    }
    let v = json_ok(&store, &["verify"]);
    assert_eq!(v["clean"], true, "{v}");
    // rebuild-db keeps them recomputable (not "collected"): the next run remakes nothing.
    let r = sst1mflow(&store, &["rebuild-db", "--force"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let (code, third, _) = run_json(&store, &v2, &[]);
    assert_eq!(code, 0);
    assert_eq!((third["ran"].clone(), third["recomputed"].clone()), (json!(0), json!(0)), "{third}");
}

#[test]
fn a_recomputable_output_remade_with_other_bytes_stops_with_a_determinism_error() {
    let dir = TempDir::new("nondet");
    write_inputs(dir.path(), 2);
    // Not deterministic on purpose: the time of day is in the output.
    let make = "cat \"$1\" > big.txt; date +%s%N >> big.txt";
    let v1 = recomputable_recipe(dir.path(), "v1", make, "cksum < \"$1\" > small.txt");
    let store = dir.path().join("store");
    let (code, first, err) = run_json(&store, &v1, &[]);
    assert_eq!(code, 0, "{err}");
    let v2 = recomputable_recipe(dir.path(), "v2", make, "md5sum < \"$1\" > small.txt");
    let (code, second, err) = run_json(&store, &v2, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(second["failed"], 2, "{second}");
    let make_key = first["activities"][0]["key"].as_str().unwrap();
    assert!(err.contains(&format!("activity {make_key} (command) is not deterministic")), "{err}");
    assert!(err.contains("big is sha256"), "{err}");
    // Nothing of the wrong bytes stays; the store is clean.
    assert_eq!(object_count(&store), 2);
    let v = json_ok(&store, &["verify"]);
    assert_eq!(v["clean"], true, "{v}");
}

#[test]
fn the_disk_holds_about_j_recomputable_outputs_at_once() {
    let dir = TempDir::new("bounded");
    write_inputs(dir.path(), 8);
    let store = dir.path().join("store");
    let objects = store.join("objects");
    // Each consumer counts the producers' outputs on disk while it runs.
    let make = "printf 'BULK-%s\\n' \"$1\" > big.txt; seq 1 5000 >> big.txt";
    let count = format!("grep -rl '^BULK-' {} | wc -l > small.txt", objects.display());
    for jobs in ["1", "2"] {
        let _ = std::fs::remove_dir_all(&store);
        let recipe = recomputable_recipe(dir.path(), &format!("j{jobs}"), make, &count);
        let (code, report, err) = run_json(&store, &recipe, &["-j", jobs]);
        assert_eq!(code, 0, "{err}");
        let mut seen = Vec::new();
        for a in report["activities"].as_array().unwrap().iter().filter(|a| a["step"] == "use") {
            let h = a["outputs"]["small"].as_str().unwrap();
            let n: usize = std::fs::read_to_string(objects.join(&h[..2]).join(h)).unwrap().trim().parse().unwrap();
            seen.push(n);
        }
        let most = *seen.iter().max().unwrap();
        let j: usize = jobs.parse().unwrap();
        println!("-j {jobs}: recomputable outputs on disk while consumers ran: {seen:?}");
        assert!(most <= j + 1, "-j {jobs}: up to {most} recomputable outputs at once ({seen:?})");
        let left = std::process::Command::new("sh")
            .args(["-c", &format!("grep -rl '^BULK-' {} | wc -l", objects.display())])
            .output()
            .unwrap();
        assert_eq!(stdout(&left).trim(), "0", "all deleted at the end");
    }
}

#[test]
fn consumed_outputs_left_on_disk_are_deleted_by_the_next_run_and_kept_ones_stay() {
    let dir = TempDir::new("later");
    write_inputs(dir.path(), 3);
    let make = "cat \"$1\" > big.txt; seq 1 1000 >> big.txt";
    let recomputable = recomputable_recipe(dir.path(), "r", make, "cksum < \"$1\" > small.txt");
    let keeping = dir.path().join("keeping.json");
    let text =
        std::fs::read_to_string(&recomputable).unwrap().replace("\"recomputable\": true", "\"recomputable\": false");
    write(&keeping, &text);
    // Store A: the outputs are deleted once consumed. Store B: the same activities (marking an
    // output recomputable changes no key), its outputs kept.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (code, first, err) = run_json(&a, &recomputable, &[]);
    assert_eq!(code, 0, "{err}");
    let (code, kept, err) = run_json(&b, &keeping, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(output_hashes(&first), output_hashes(&kept));
    assert_eq!((object_count(&a), object_count(&b)), (3, 6));
    // As after a run killed between recording the consumers and deleting what they consumed:
    // the objects are back in A. The next run reuses everything and deletes them then.
    for (k, h) in output_hashes(&first).iter().filter(|(k, _)| k.starts_with("make/")) {
        let (from, to) = (b.join("objects").join(&h[..2]).join(h), a.join("objects").join(&h[..2]).join(h));
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    assert_eq!(object_count(&a), 6);
    let (code, again, err) = run_json(&a, &recomputable, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again["reused"], 6, "{again}");
    assert_eq!(object_count(&a), 3, "the consumed outputs are deleted");
    // In B they were recorded as kept: the recomputable recipe reuses them and keeps them.
    let (code, _, err) = run_json(&b, &recomputable, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(object_count(&b), 6, "outputs recorded as kept stay");
    for store in [&a, &b] {
        let v = json_ok(store, &["verify"]);
        assert_eq!(v["clean"], json!(true), "{v}");
    }
}

#[test]
fn a_command_cannot_write_through_to_a_raw_file_read_in_place() {
    // A raw file read in place is the user's own, often writable: a command that writes to its
    // input gets a read-only copy (a read-only file is linked).
    let dir = TempDir::new("through");
    write_inputs(dir.path(), 2);
    let writable = dir.path().join("inputs/in_00.txt");
    let readonly = dir.path().join("inputs/in_01.txt");
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o444)).unwrap();
    let how = "if [ -L \"$1\" ]; then echo link; else echo copy; fi > how.txt";
    let recipe = recipe_file(
        dir.path(),
        "tamper",
        json!({
            "inputs": {"w": {"paths": "inputs/in_00.txt", "kind": "r0"}, "r": {"paths": "inputs/in_01.txt", "kind": "r0"}},
            "steps": [
                {"name": "tamper", "stage": "command", "inputs": {"f": "w"},
                 "params": {"argv": ["sh", "-c", format!("{how}; chmod u+w \"$1\"; echo tampered >> \"$1\" || true"), "t", "{input:f}"],
                            "outputs": {"how": "how.txt"}}},
                {"name": "read", "stage": "command", "inputs": {"f": "r"},
                 "params": {"argv": ["sh", "-c", how, "t", "{input:f}"], "outputs": {"how": "how.txt"}}}
            ]
        }),
    );
    let before = std::fs::read(&writable).unwrap();
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    assert_eq!(std::fs::read(&writable).unwrap(), before, "the user's raw file is untouched");
    let shown = |step: &str| {
        let h = output_hashes(&report)[&format!("{step}/all/how")].clone();
        std::fs::read_to_string(store.join("objects").join(&h[..2]).join(&h)).unwrap()
    };
    assert_eq!((shown("tamper"), shown("read")), ("copy\n".to_string(), "link\n".to_string()));

    // A file changed while an activity reads it (here by a command run as root, which can write
    // through a link to a read-only file) fails that activity, naming the file.
    let root = std::process::Command::new("id").arg("-u").output().map(|o| stdout(&o).trim() == "0").unwrap_or(false);
    if !root {
        println!("not root: a command cannot write to the read-only file; that part is skipped");
        return;
    }
    let tampering = recipe_file(
        dir.path(),
        "tamper-ro",
        json!({
            "inputs": {"r": {"paths": "inputs/in_01.txt", "kind": "r0"}},
            "steps": [{"name": "t", "stage": "command", "inputs": {"f": "r"},
                       "params": {"argv": ["sh", "-c", "echo tampered >> \"$1\"; echo done > o.txt", "t", "{input:f}"],
                                  "outputs": {"o": "o.txt"}}}]
        }),
    );
    let (code, _, err) = run_json(&store, &tampering, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{} changed while the activity read it", readonly.canonicalize().unwrap().display())),
        "{err}"
    );
}

#[test]
fn gc_lists_no_recomputable_output_that_is_already_deleted() {
    let dir = TempDir::new("gc");
    write_inputs(dir.path(), 2);
    let v1 = recomputable_recipe(
        dir.path(),
        "r",
        "cat \"$1\" > big.txt; seq 1 500 >> big.txt",
        "cksum < \"$1\" > small.txt",
    );
    let store = dir.path().join("store");
    let (code, first, err) = run_json(&store, &v1, &[]);
    assert_eq!(code, 0, "{err}");
    // The same recipe with another producer: the first run's products are needed no more.
    let v2 = recomputable_recipe(
        dir.path(),
        "r",
        "cat \"$1\" > big.txt; seq 1 600 >> big.txt",
        "cksum < \"$1\" > small.txt",
    );
    let (code, _, err) = run_json(&store, &v2, &[]);
    assert_eq!(code, 0, "{err}");
    let gc = json_ok(&store, &["gc"]);
    let listed: Vec<&str> = gc["products"].as_array().unwrap().iter().map(|p| p["hash"].as_str().unwrap()).collect();
    let old = output_hashes(&first);
    for (k, h) in &old {
        assert_eq!(listed.contains(&h.as_str()), k.starts_with("use/"), "{k}: {gc}");
    }
    let sizes: u64 =
        listed.iter().map(|h| std::fs::metadata(store.join("objects").join(&h[..2]).join(h)).unwrap().len()).sum();
    assert_eq!(gc["bytes"], sizes, "{gc}");
    let deleted = json_ok(&store, &["gc", "--delete"]);
    assert_eq!(deleted["freed"], sizes);
    let v = json_ok(&store, &["verify"]);
    assert_eq!(v["clean"], json!(true), "{v}");
}
