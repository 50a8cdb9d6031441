//! Records which git commit the binary is built from, and whether the work tree was dirty (with
//! a fingerprint of the uncommitted changes, so two different dirty builds never share a
//! version), so that every activity can carry an exact pipeline version. Shells out to `git` (present
//! wherever the source came from a clone); outside a git checkout the commit is "unknown".
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// FNV-1a, 64 bits: a stable fingerprint of the uncommitted diff (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// What the binary is built from: only changes here make a build dirty (a README or a test
/// edit does not change what the binary computes, so it must not make every product stale).
const BUILD_INPUTS: [&str; 6] = ["src", "crates", "config", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SST1MFLOW_GIT_COMMIT={commit}");
    // Tracked changes, and new files not ignored (a new source module is compiled in).
    let mut status = vec!["status", "--porcelain", "--untracked-files=all", "--"];
    status.extend(BUILD_INPUTS);
    let dirty = git(&status).is_some_and(|s| !s.is_empty());
    let fingerprint = if dirty {
        let mut args = vec!["diff", "HEAD", "--no-ext-diff", "--binary", "--"];
        args.extend(BUILD_INPUTS);
        let mut bytes = Command::new("git").args(&args).output().map(|o| o.stdout).unwrap_or_default();
        let mut untracked = vec!["ls-files", "--others", "--exclude-standard", "--"];
        untracked.extend(BUILD_INPUTS);
        for file in git(&untracked).unwrap_or_default().lines() {
            bytes.extend_from_slice(file.as_bytes());
            bytes.push(0);
            bytes.extend(std::fs::read(file).unwrap_or_default());
        }
        format!("{:016x}", fnv1a(&bytes))
    } else {
        String::new()
    };
    println!("cargo:rustc-env=SST1MFLOW_GIT_DIRTY={}", if dirty { "1" } else { "0" });
    println!("cargo:rustc-env=SST1MFLOW_DIRTY_FINGERPRINT={fingerprint}");
    // Re-run when HEAD moves, the index changes, or any tracked source changes.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/index");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
    }
    for path in BUILD_INPUTS {
        println!("cargo:rerun-if-changed={path}");
    }
}
