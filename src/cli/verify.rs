//! `sst1mflow verify`: prints [`crate::engine::maintenance::verify::verify`]'s findings.
use super::Cli;
use crate::engine::maintenance::verify::verify;
use crate::error::Result;
use crate::store::Store;

pub fn run(cli: &Cli, quick: bool) -> Result<i32> {
    let store = Store::open_existing(&cli.store_dir())?;
    let report = verify(&store, quick)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json()).expect("json"));
    } else {
        for p in &report.problems {
            println!("PROBLEM  {p}");
        }
        if !report.descendants.is_empty() {
            println!("derived from damaged products ({}):", report.descendants.len());
            for d in &report.descendants {
                println!("  {d}");
            }
        }
        for n in &report.notices {
            println!("notice   {n}");
        }
        let absent = if report.recomputable_absent > 0 {
            format!(", {} recomputable output(s) not stored (deleted once consumed)", report.recomputable_absent)
        } else {
            String::new()
        };
        println!(
            "{}: {} objects, {} referenced raw input(s), {:.1} MiB re-hashed{absent}, {} problem(s)",
            if report.clean() { "clean" } else { "NOT CLEAN" },
            report.objects_checked,
            report.referenced_checked,
            (report.bytes_checked + report.referenced_bytes) as f64 / (1024.0 * 1024.0),
            report.problems.len()
        );
    }
    Ok(if report.clean() { 0 } else { 1 })
}
