//! `diff A B`: where the provenance of two products diverges.
//!
//! The two lineages are walked side by side, aligned by input role and position: at each
//! level the makers are compared (stage, stage version, pipeline version, every config key
//! and parameter), then each pair of inputs that differs is followed down, until raw inputs.
//! Identical sub-lineages (same hash) are not entered: they cannot differ.
use super::query::{ActivityInfo, Graph, ProductInfo};
use crate::config::flatten;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Difference {
    /// Where in the lineage, e.g. `count ← events[0] ← runs[2]`.
    pub path: String,
    pub what: String,
    pub a: String,
    pub b: String,
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn describe(p: &ProductInfo) -> String {
    let name = p.metadata.get("file_name").and_then(Value::as_str).unwrap_or("");
    format!("{} {} {}", sst1mflow_base::text::short(&p.hash, 12), p.kind, name).trim_end().to_string()
}

fn compare_settings(path: &str, label: &str, a: &Value, b: &Value, out: &mut Vec<Difference>) {
    let (fa, fb) = (flatten(a), flatten(b));
    let mut keys: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if fa.get(k) != fb.get(k) {
            out.push(Difference {
                path: path.into(),
                what: format!("{label} {k}"),
                a: show(fa.get(k)),
                b: show(fb.get(k)),
            });
        }
    }
}

fn maker<'g>(g: &'g Graph, hash: &str) -> Option<&'g ActivityInfo> {
    g.made_by.get(hash).and_then(|id| g.activities.get(id))
}

fn walk(ga: &Graph, ha: &str, gb: &Graph, hb: &str, path: &str, out: &mut Vec<Difference>) {
    if ha == hb {
        return;
    }
    let (pa, pb) = (&ga.products[ha], &gb.products[hb]);
    out.push(Difference { path: path.into(), what: "content".into(), a: describe(pa), b: describe(pb) });
    if pa.kind != pb.kind {
        out.push(Difference { path: path.into(), what: "kind".into(), a: pa.kind.clone(), b: pb.kind.clone() });
    }
    let (ma, mb) = match (maker(ga, ha), maker(gb, hb)) {
        (None, None) => return,
        (Some(a), None) => {
            out.push(Difference {
                path: path.into(),
                what: "made by".into(),
                a: a.stage.clone(),
                b: "(raw input)".into(),
            });
            return;
        }
        (None, Some(b)) => {
            out.push(Difference {
                path: path.into(),
                what: "made by".into(),
                a: "(raw input)".into(),
                b: b.stage.clone(),
            });
            return;
        }
        (Some(a), Some(b)) => (a, b),
    };
    let mut field = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(Difference { path: path.into(), what: what.into(), a: a.into(), b: b.into() });
        }
    };
    field("stage", &ma.stage, &mb.stage);
    field("stage version", &ma.stage_version, &mb.stage_version);
    field("pipeline version", &ma.pipeline_version, &mb.pipeline_version);
    compare_settings(path, "config", &ma.config, &mb.config, out);
    compare_settings(path, "param", &ma.params, &mb.params, out);
    let index = |a: &ActivityInfo| -> BTreeMap<(String, u32), String> {
        a.inputs.iter().map(|(r, p, h)| ((r.clone(), *p), h.clone())).collect()
    };
    let (ia, ib) = (index(ma), index(mb));
    let mut slots: Vec<&(String, u32)> = ia.keys().chain(ib.keys()).collect();
    slots.sort();
    slots.dedup();
    for slot in slots {
        let sub = format!("{path} ← {}[{}]", slot.0, slot.1);
        match (ia.get(slot), ib.get(slot)) {
            (Some(x), Some(y)) => walk(ga, x, gb, y, &sub, out),
            (Some(x), None) => out.push(Difference {
                path: sub,
                what: "input".into(),
                a: describe(&ga.products[x]),
                b: "(absent)".into(),
            }),
            (None, Some(y)) => out.push(Difference {
                path: sub,
                what: "input".into(),
                a: "(absent)".into(),
                b: describe(&gb.products[y]),
            }),
            (None, None) => {}
        }
    }
}

/// Differences between the lineages of `a.root` and `b.root`, outermost first.
pub fn diff(a: &Graph, b: &Graph) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(a, &a.root, b, &b.root, "product", &mut out);
    out
}

pub fn to_json(diffs: &[Difference]) -> Value {
    Value::Array(diffs.iter().map(|d| json!({"path": d.path, "what": d.what, "a": d.a, "b": d.b})).collect())
}
