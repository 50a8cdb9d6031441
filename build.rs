//! Records which git commit the binary is built from, and whether the work tree was dirty, so
//! that every activity can carry an exact pipeline version. Shells out to `git` (present
//! wherever the source came from a clone); outside a git checkout the commit is "unknown".
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    // Untracked files that git ignores (target/, store/) do not count as dirt.
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) => !s.is_empty(),
        None => false,
    };
    println!("cargo:rustc-env=SST1MFLOW_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=SST1MFLOW_GIT_DIRTY={}", if dirty { "1" } else { "0" });
    // Re-run when HEAD moves, the index changes, or any tracked source changes.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/index");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
    }
    for path in ["src", "Cargo.toml", "Cargo.lock", "build.rs", "recipes", "config"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
