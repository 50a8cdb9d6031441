//! The pipeline version: what exact build of sst1mflow made a product.
//!
//! It is the crate version, the git commit the binary was built from (see `build.rs`) and a
//! `dirty` marker with a fingerprint of the uncommitted changes to the build inputs (`src`, `crates`,
//! `config`, `build.rs`, `Cargo.toml`, `Cargo.lock`; see `build.rs`) when there are any, e.g.
//! `0.1.0+3f2a…c9` or `0.1.0+3f2a…c9.dirty-5e0c…41` (so products of two different uncommitted
//! states never pass for each other). It enters every activity key and is recorded on every activity.

/// Crate version from Cargo.toml.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Full 40-hex git commit, or "unknown" when built outside a git checkout.
pub const GIT_COMMIT: &str = env!("SST1MFLOW_GIT_COMMIT");
/// Whether the tracked work tree differed from the commit at build time.
pub const GIT_DIRTY: bool = matches!(env!("SST1MFLOW_GIT_DIRTY").as_bytes(), b"1");

/// The pipeline version string recorded on every activity and inside every key.
pub fn pipeline_version() -> String {
    let mut v = format!("{CRATE_VERSION}+{GIT_COMMIT}");
    if GIT_DIRTY {
        v.push_str(".dirty");
        let fingerprint = env!("SST1MFLOW_DIRTY_FINGERPRINT");
        if !fingerprint.is_empty() {
            v.push('-');
            v.push_str(fingerprint);
        }
    }
    v
}
