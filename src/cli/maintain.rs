//! Store maintenance commands: `rebuild-db`, `invalidate`, `pin`, `unpin`, `gc`.
use super::Cli;
use crate::error::{Error, Result};
use crate::store::Store;
use serde_json::json;

pub fn rebuild_db(cli: &Cli, force: bool) -> Result<i32> {
    let store = Store::open_existing(&cli.store_dir())?;
    if store.db_path().exists() && !force {
        return Err(Error::msg(format!(
            "{} exists; rebuild-db replaces it from manifests/ (pass --force to do so)",
            store.db_path().display()
        )));
    }
    let r = crate::provenance::rebuild::rebuild(&store)?;
    if cli.json {
        println!(
            "{}",
            json!({"activities": r.activities, "products": r.products, "missing_objects": r.missing_objects})
        );
    } else {
        println!(
            "rebuilt {}: {} activities, {} products ({} without their object)",
            store.db_path().display(),
            r.activities,
            r.products,
            r.missing_objects
        );
    }
    Ok(0)
}
