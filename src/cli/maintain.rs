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
    // Exclusive with every run (which holds it shared): a database replaced under a running
    // run would lose what that run records.
    let _guard = crate::engine::maintenance::gc::guard(&store, true)?;
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

#[derive(clap::Args)]
pub struct InvalidateArgs {
    /// Product: hash or unique prefix, a path in the store or a view, or a copy of a product
    pub target: Option<String>,
    /// Everything made by this pipeline version
    #[arg(long, value_name = "V")]
    pub pipeline_version: Option<String>,
    /// Everything made by this stage
    #[arg(long, value_name = "S")]
    pub stage: Option<String>,
    /// With --stage: only this stage version
    #[arg(long, value_name = "N", requires = "stage")]
    pub stage_version: Option<String>,
    /// Do not include descendants
    #[arg(long)]
    pub only: bool,
    /// List what would be invalidated; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Why (recorded with the invalidation)
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn invalidate(cli: &Cli, args: &InvalidateArgs) -> Result<i32> {
    use crate::provenance::invalidate::{apply, plan, Selector};
    let (store, db) = super::graph::open(cli)?;
    let chosen = [args.target.is_some(), args.pipeline_version.is_some(), args.stage.is_some()];
    if chosen.iter().filter(|c| **c).count() != 1 {
        return Err(Error::msg("invalidate takes exactly one of: TARGET, --pipeline-version V, --stage S"));
    }
    let selector = if let Some(t) = &args.target {
        Selector::Product(crate::provenance::query::resolve_target(&store, &db, t)?)
    } else if let Some(v) = &args.pipeline_version {
        Selector::PipelineVersion(v.clone())
    } else {
        Selector::Stage { stage: args.stage.clone().expect("checked"), version: args.stage_version.clone() }
    };
    let p = plan(&db, &selector, !args.only)?;
    let reason = format!(
        "{} ({} at {})",
        args.reason.as_deref().unwrap_or("invalidated by hand"),
        crate::provenance::manifest::user_name(),
        crate::provenance::now_utc()
    );
    if !args.dry_run {
        apply(&store, &db, &p, &reason)?;
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dry_run": args.dry_run, "reason": reason,
                "activities": p.activities.values().map(|(k, s, v)| json!({"key": k, "stage": s, "stage_version": v})).collect::<Vec<_>>(),
                "products": p.products, "raw_inputs": p.raw,
            }))
            .expect("json")
        );
    } else {
        let verb = if args.dry_run { "would invalidate" } else { "invalidated" };
        for (key, stage, version) in p.activities.values() {
            println!("{verb} activity {} ({stage} v{version})", crate::text::short(key, 12));
        }
        for h in &p.raw {
            println!("{verb} raw input {} (runs will refuse it until it is replaced)", crate::text::short(h, 12));
        }
        println!("{verb}: {} activities, {} products", p.activities.len(), p.products.len());
    }
    Ok(0)
}

pub fn gc(cli: &Cli, delete: bool) -> Result<i32> {
    let (store, db) = super::graph::open(cli)?;
    let _guard = if delete { Some(crate::engine::maintenance::gc::guard(&store, true)?) } else { None };
    let garbage = crate::engine::maintenance::gc::find_garbage(&store, &db)?;
    let total: u64 = garbage.iter().map(|g| g.size).sum();
    let freed = if delete { crate::engine::maintenance::gc::delete(&store, &db, &garbage)? } else { 0 };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "deleted": delete, "bytes": total, "freed": freed,
                "products": garbage.iter().map(|g| json!({"hash": g.hash, "kind": g.kind, "size": g.size, "invalid": g.invalid})).collect::<Vec<_>>(),
            }))
            .expect("json")
        );
    } else {
        for g in &garbage {
            println!("{}  {:<12} {:>10} B{}", g.hash, g.kind, g.size, if g.invalid { "  (invalid)" } else { "" });
        }
        if delete {
            println!("deleted {} products, {} bytes freed", garbage.len(), freed);
        } else {
            println!(
                "{} products ({} bytes) are needed by no recipe output, pin or live descendant; `gc --delete` removes them",
                garbage.len(),
                total
            );
        }
    }
    Ok(0)
}

pub fn pin(cli: &Cli, name: Option<&str>, target: Option<&str>) -> Result<i32> {
    use crate::provenance::manifest::{read_map, write_map};
    let (store, db) = super::graph::open(cli)?;
    let mut pins = read_map(store.root(), "pins.json")?;
    match (name, target) {
        (Some(name), Some(target)) => {
            let hash = crate::provenance::query::resolve_target(&store, &db, target)?;
            pins.insert(name.to_string(), hash.clone());
            write_map(store.root(), "pins.json", &pins)?;
            db.pin(name, &hash)?;
            if cli.json {
                println!("{}", json!({"pinned": name, "product": hash}));
            } else {
                println!("pinned {name} → {hash} (it and its whole lineage are kept by gc)");
            }
        }
        (None, None) => {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&pins).expect("json"));
            } else if pins.is_empty() {
                println!("no pins");
            } else {
                for (n, h) in &pins {
                    println!("{n}  {h}");
                }
            }
        }
        _ => return Err(Error::msg("usage: sst1mflow pin NAME TARGET (or no arguments to list pins)")),
    }
    Ok(0)
}

pub fn unpin(cli: &Cli, name: &str) -> Result<i32> {
    use crate::provenance::manifest::{read_map, write_map};
    let (store, db) = super::graph::open(cli)?;
    let mut pins = read_map(store.root(), "pins.json")?;
    if pins.remove(name).is_none() {
        return Err(Error::msg(format!("no pin named \"{name}\"")));
    }
    write_map(store.root(), "pins.json", &pins)?;
    db.unpin(name)?;
    if cli.json {
        println!("{}", json!({"unpinned": name}));
    } else {
        println!("unpinned {name}");
    }
    Ok(0)
}

pub fn reproduce(cli: &Cli, target: &str, keep: bool) -> Result<i32> {
    let (store, db) = super::graph::open(cli)?;
    let scratch = store.root().join("tmp").join(format!("reproduce-{}", std::process::id()));
    let outcome = crate::engine::reproduce::reproduce(&crate::stages::pipeline(), &store, &db, target, &scratch);
    if !keep {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let r = outcome?;
    let ok = r.first_mismatch.is_none();
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "reproduced": ok,
                "raw_inputs": r.raw_inputs,
                "warnings": r.warnings,
                "first_mismatch": r.first_mismatch.as_ref().map(|(s, k)| json!({"stage": s, "activity": k})),
                "rows": r.rows.iter().map(|row| json!({"stage": row.stage, "activity": row.key, "output": row.role,
                    "recorded": row.recorded, "reproduced": row.reproduced, "match": row.matches()})).collect::<Vec<_>>(),
            }))
            .expect("json")
        );
    } else {
        for w in &r.warnings {
            println!("warning: {w}");
        }
        println!("{:<10} {:<14} {:<12} {:<14} {:<14} result", "stage", "activity", "output", "recorded", "reproduced");
        for row in &r.rows {
            println!(
                "{:<10} {:<14} {:<12} {:<14} {:<14} {}",
                row.stage,
                crate::text::short(&row.key, 12),
                row.role,
                crate::text::short(&row.recorded, 12),
                crate::text::short(&row.reproduced, 12),
                if row.matches() { "identical" } else { "DIFFERS" }
            );
        }
        match &r.first_mismatch {
            None => println!(
                "reproduced: {} outputs of {} activities from {} raw inputs, bit for bit",
                r.rows.len(),
                r.rows.iter().map(|x| &x.key).collect::<std::collections::HashSet<_>>().len(),
                r.raw_inputs
            ),
            Some((stage, key)) => println!("NOT REPRODUCED: bytes first differ at stage {stage} (activity {key})"),
        }
    }
    Ok(if ok { 0 } else { 1 })
}
