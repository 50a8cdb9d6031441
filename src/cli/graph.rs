//! `lineage`, `descendants` and `show`: render [`crate::provenance::query`] answers as trees
//! for people, flat JSON for scripts, or Graphviz.
use super::Cli;
use crate::engine::config::flatten;
use crate::error::{Error, Result};
use crate::provenance::query::{self, activity_json, ActivityInfo, Graph, ProductInfo};
use crate::provenance::Db;
use crate::store::Store;
use clap::Args;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args)]
pub struct GraphArgs {
    /// Product: hash or unique prefix, a path in the store or a view, or a copy of a product
    pub target: String,
    /// Expand at most this many activity levels
    #[arg(long)]
    pub depth: Option<usize>,
    /// Print the graph in Graphviz dot format
    #[arg(long)]
    pub dot: bool,
    /// Render the graph to this SVG file with Graphviz `dot`
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

pub fn open(cli: &Cli) -> Result<(Store, Db)> {
    let store = Store::open_existing(&cli.store_dir())?;
    let db = Db::open_for_reading(&store.db_path())?;
    Ok((store, db))
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

pub fn product_label(p: &ProductInfo) -> String {
    let mut s = format!("{} {} · {}", short(&p.hash), p.kind, human_size(p.size));
    if let Some(name) = p.metadata.get("file_name").and_then(Value::as_str) {
        let _ = write!(s, " · {name}");
    }
    if let Some(why) = &p.invalid {
        let _ = write!(s, "  INVALID ({why})");
    }
    if p.collected {
        s.push_str("  [deleted by gc]");
    }
    if p.recomputable {
        s.push_str("  [recomputable]");
    }
    s
}

fn compact(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

pub fn settings_line(v: &Value) -> String {
    let flat = flatten(v);
    if flat.is_empty() || (flat.len() == 1 && flat.contains_key("")) {
        return "(none)".into();
    }
    flat.iter().map(|(k, v)| format!("{k}={}", compact(v, 120))).collect::<Vec<_>>().join("  ")
}

fn activity_header(a: &ActivityInfo) -> String {
    let mut s = format!(
        "{} v{} · pipeline {} · activity {} · {} {}@{}",
        a.stage,
        a.stage_version,
        a.pipeline_version,
        short(&a.key),
        a.ended_at,
        a.user,
        a.host
    );
    if let Some(why) = &a.invalid {
        let _ = write!(s, "  INVALID ({why})");
    }
    s
}

fn lineage_text(g: &Graph, depth: Option<usize>) -> String {
    let mut out = String::new();
    let mut shown = HashSet::new();
    let root = &g.products[&g.root];
    let _ = writeln!(out, "{}", product_label(root));
    ancestors_text(g, &g.root, "", 0, depth, &mut shown, &mut out);
    out
}

fn ancestors_text(
    g: &Graph,
    hash: &str,
    indent: &str,
    level: usize,
    depth: Option<usize>,
    shown: &mut HashSet<String>,
    out: &mut String,
) {
    let Some(a) = g.made_by.get(hash).and_then(|id| g.activities.get(id)) else {
        let places = g.products.get(hash).map(|p| p.places.as_slice()).unwrap_or_default();
        match places {
            [] => {
                let _ = writeln!(out, "{indent}└── raw input");
            }
            [only] => {
                let _ = writeln!(out, "{indent}└── raw input, read in place at {only}");
            }
            many => {
                let _ = writeln!(out, "{indent}└── raw input, read in place at {}", many.join(", "));
            }
        }
        return;
    };
    if depth.is_some_and(|d| level >= d) {
        let _ = writeln!(out, "{indent}└── … (made by {} {}; --depth limit)", a.stage, short(&a.key));
        return;
    }
    if !shown.insert(a.key.clone()) {
        let _ = writeln!(out, "{indent}└── made by activity {} (shown above)", short(&a.key));
        return;
    }
    let _ = writeln!(out, "{indent}└── {}", activity_header(a));
    let inner = format!("{indent}    ");
    let _ = writeln!(out, "{inner}config: {}", settings_line(&a.config));
    let _ = writeln!(out, "{inner}params: {}", settings_line(&a.params));
    for (i, (role, pos, h)) in a.inputs.iter().enumerate() {
        let last = i + 1 == a.inputs.len();
        let p = &g.products[h];
        let _ = writeln!(out, "{inner}{} {role}[{pos}]: {}", if last { "└──" } else { "├──" }, product_label(p));
        let next = format!("{inner}{}", if last { "    " } else { "│   " });
        ancestors_text(g, h, &next, level + 1, depth, shown, out);
    }
}

fn descendants_text(g: &Graph, depth: Option<usize>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", product_label(&g.products[&g.root]));
    let mut shown = HashSet::new();
    descend(g, &g.root, "", 0, depth, &mut shown, &mut out);
    if g.used_by.is_empty() {
        let _ = writeln!(out, "(nothing is derived from it)");
    }
    out
}

fn descend(
    g: &Graph,
    hash: &str,
    indent: &str,
    level: usize,
    depth: Option<usize>,
    shown: &mut HashSet<i64>,
    out: &mut String,
) {
    let users = g.used_by.get(hash).cloned().unwrap_or_default();
    for (i, id) in users.iter().enumerate() {
        let a = &g.activities[id];
        let last = i + 1 == users.len();
        let branch = if last { "└──" } else { "├──" };
        let next = format!("{indent}{}", if last { "    " } else { "│   " });
        if depth.is_some_and(|d| level >= d) {
            let _ = writeln!(out, "{indent}{branch} … (--depth limit)");
            return;
        }
        let role = a.inputs.iter().find(|(_, _, h)| h == hash).map(|(r, _, _)| r.as_str()).unwrap_or("?");
        if !shown.insert(*id) {
            let _ = writeln!(out, "{indent}{branch} as {role} in activity {} (shown above)", short(&a.key));
            continue;
        }
        let _ = writeln!(out, "{indent}{branch} as {role} in {}", activity_header(a));
        for (j, (out_role, h)) in a.outputs.iter().enumerate() {
            let last_out = j + 1 == a.outputs.len();
            let _ = writeln!(
                out,
                "{next}{} {out_role}: {}",
                if last_out { "└──" } else { "├──" },
                product_label(&g.products[h])
            );
            let deeper = format!("{next}{}", if last_out { "    " } else { "│   " });
            descend(g, h, &deeper, level + 1, depth, shown, out);
        }
        if a.status != "ok" {
            let _ = writeln!(out, "{next}(activity {})", a.status);
        }
    }
}

fn dot(g: &Graph) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from("digraph provenance {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let mut hashes: Vec<&String> = g.products.keys().collect();
    hashes.sort();
    for h in hashes {
        let p = &g.products[h];
        let name = p.metadata.get("file_name").and_then(Value::as_str).unwrap_or("");
        let color = if p.invalid.is_some() { ", color=red" } else { "" };
        let root = if *h == g.root { ", penwidth=2" } else { "" };
        let _ = writeln!(
            out,
            "  \"p_{h}\" [shape=note, label=\"{}\\n{}\\n{}\"{color}{root}];",
            esc(&p.kind),
            short(h),
            esc(name)
        );
    }
    let mut ids: Vec<&i64> = g.activities.keys().collect();
    ids.sort();
    for id in ids {
        let a = &g.activities[id];
        let color = if a.invalid.is_some() { ", color=red" } else { "" };
        let _ = writeln!(
            out,
            "  \"a_{}\" [shape=box, style=rounded, label=\"{} v{}\\n{}\"{color}];",
            a.key,
            esc(&a.stage),
            esc(&a.stage_version),
            short(&a.key)
        );
        for (role, pos, h) in &a.inputs {
            if g.products.contains_key(h) {
                let _ = writeln!(out, "  \"p_{h}\" -> \"a_{}\" [label=\"{}[{pos}]\"];", a.key, esc(role));
            }
        }
        for (role, h) in &a.outputs {
            if g.products.contains_key(h) {
                let _ = writeln!(out, "  \"a_{}\" -> \"p_{h}\" [label=\"{}\"];", a.key, esc(role));
            }
        }
    }
    out.push_str("}\n");
    out
}

fn render(cli: &Cli, args: &GraphArgs, g: &Graph, text: impl FnOnce() -> String) -> Result<i32> {
    if let Some(svg) = &args.svg {
        let mut child = std::process::Command::new("dot")
            .arg("-Tsvg")
            .arg("-o")
            .arg(svg)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("cannot run Graphviz `dot` (install it, e.g. apt-get install graphviz)", e))?;
        use std::io::Write;
        child.stdin.take().expect("piped").write_all(dot(g).as_bytes()).map_err(|e| Error::io("dot", e))?;
        let status = child.wait().map_err(|e| Error::io("dot", e))?;
        if !status.success() {
            return Err(Error::msg(format!("Graphviz dot failed writing {}", svg.display())));
        }
        eprintln!("wrote {}", svg.display());
    }
    if args.dot {
        print!("{}", dot(g));
    } else if cli.json {
        println!("{}", serde_json::to_string_pretty(&g.to_json()).expect("json"));
    } else if args.svg.is_none() {
        print!("{}", text());
    }
    Ok(0)
}

pub fn lineage(cli: &Cli, args: &GraphArgs) -> Result<i32> {
    let (store, db) = open(cli)?;
    let hash = query::resolve_target(&store, &db, &args.target)?;
    let g = query::ancestors(&db, &hash)?;
    render(cli, args, &g, || lineage_text(&g, args.depth))
}

pub fn descendants(cli: &Cli, args: &GraphArgs) -> Result<i32> {
    let (store, db) = open(cli)?;
    let hash = query::resolve_target(&store, &db, &args.target)?;
    let g = query::descendants(&db, &hash)?;
    render(cli, args, &g, || descendants_text(&g, args.depth))
}

pub fn show(cli: &Cli, target: &str) -> Result<i32> {
    let (store, db) = open(cli)?;
    let hash = query::resolve_target(&store, &db, target)?;
    let g = query::ancestors(&db, &hash)?;
    let p = &g.products[&hash];
    let maker = g.made_by.get(&hash).and_then(|id| g.activities.get(id));
    let used_by = db.user_count(&hash)?;
    let path = store.object_path(&hash);
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "hash": hash, "kind": p.kind, "size": p.size, "metadata": p.metadata, "invalid": p.invalid,
                "collected": p.collected, "recomputable": p.recomputable, "stored": path.is_file(),
                "path": path, "places": p.places, "made_by": maker.map(activity_json), "used_by_activities": used_by,
            }))
            .expect("json")
        );
        return Ok(0);
    }
    println!("product   {hash}");
    println!("kind      {}", p.kind);
    println!("size      {} ({} bytes)", human_size(p.size), p.size);
    println!(
        "metadata  {}",
        if p.metadata.as_object().is_some_and(|m| m.is_empty()) { "(none)".into() } else { p.metadata.to_string() }
    );
    if path.is_file() || p.places.is_empty() {
        let note = if p.collected {
            "  (deleted by gc)"
        } else if p.recomputable && !path.is_file() {
            "  (recomputable: deleted once consumed, remade when needed)"
        } else {
            ""
        };
        println!("object    {}{note}", path.display());
    }
    for place in &p.places {
        println!("read at   {place}  (raw input referenced in place)");
    }
    if let Some(why) = &p.invalid {
        println!("INVALID   {why}");
    }
    match maker {
        None => println!("made by   (raw input)"),
        Some(a) => {
            println!("made by   {}", activity_header(a));
            println!("          key {}", a.key);
            println!("          config: {}", settings_line(&a.config));
            println!("          params: {}", settings_line(&a.params));
            for (role, pos, h) in &a.inputs {
                println!("          input {role}[{pos}]: {}", product_label(&g.products[h]));
            }
        }
    }
    println!("used by   {used_by} activit{}", if used_by == 1 { "y" } else { "ies" });
    Ok(0)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProvFormat {
    ProvJson,
    ProvN,
}

pub fn export_prov(cli: &Cli, target: &str, format: ProvFormat, output: Option<&std::path::Path>) -> Result<i32> {
    let (store, db) = open(cli)?;
    let hash = query::resolve_target(&store, &db, target)?;
    let g = query::ancestors(&db, &hash)?;
    let text = match format {
        ProvFormat::ProvJson => {
            serde_json::to_string_pretty(&crate::provenance::prov::to_prov_json(&g)).expect("json") + "\n"
        }
        ProvFormat::ProvN => crate::provenance::prov::to_prov_n(&g),
    };
    match output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        None => print!("{text}"),
    }
    Ok(0)
}

pub fn diff(cli: &Cli, a: &str, b: &str) -> Result<i32> {
    let (store, db) = open(cli)?;
    let ha = query::resolve_target(&store, &db, a)?;
    let hb = query::resolve_target(&store, &db, b)?;
    let (ga, gb) = (query::ancestors(&db, &ha)?, query::ancestors(&db, &hb)?);
    let diffs = crate::provenance::diff::diff(&ga, &gb);
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"a": ha, "b": hb, "differences": crate::provenance::diff::to_json(&diffs)})
            )
            .expect("json")
        );
        return Ok(0);
    }
    println!("A  {}", product_label(&ga.products[&ha]));
    println!("B  {}", product_label(&gb.products[&hb]));
    if diffs.is_empty() {
        println!("identical: same bytes, same provenance");
        return Ok(0);
    }
    let w = diffs.iter().map(|d| d.what.chars().count()).max().unwrap_or(0);
    let mut last_path = "";
    for d in &diffs {
        if d.path != last_path {
            println!("{}", d.path);
            last_path = &d.path;
        }
        println!("  {:<w$}  A: {}", d.what, d.a);
        println!("  {:<w$}  B: {}", "", d.b);
    }
    Ok(0)
}
