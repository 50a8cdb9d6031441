//! `sst1mflow log KEY`: the captured log of an activity.
use super::Cli;
use crate::error::{Error, Result};
use crate::provenance::Db;
use crate::store::Store;
use serde_json::json;

pub fn run(cli: &Cli, prefix: &str) -> Result<i32> {
    let store = Store::open_existing(&cli.store_dir())?;
    let db = Db::open_for_reading(&store.db_path())?;
    let keys = db.keys_with_prefix(&prefix.to_lowercase())?;
    let key = match keys.as_slice() {
        [] => return Err(Error::msg(format!("no activity key starts with \"{prefix}\""))),
        [k] => k.clone(),
        _ => return Err(Error::msg(format!("\"{prefix}\" is ambiguous: {} keys start with it", keys.len()))),
    };
    let a = db.activity_by_key(&key)?.expect("listed key exists");
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "key": a.key, "stage": a.stage, "stage_version": a.stage_version,
                "pipeline_version": a.pipeline_version, "status": a.status, "started_at": a.started_at,
                "ended_at": a.ended_at, "host": a.host, "error": a.error, "log": a.log,
                "executor": a.executor,
            }))
            .expect("json")
        );
    } else {
        if let Some(job) = &a.executor {
            println!("# {}", super::status::describe_job(job));
        }
        print!("{}", a.log);
        if !a.log.ends_with('\n') {
            println!();
        }
    }
    Ok(0)
}
