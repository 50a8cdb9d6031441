//! W3C PROV export of a product's lineage, as PROV-JSON or PROV-N.
//!
//! Entities are products, named `sha256:<hex>` and carrying kind, size, digest and metadata;
//! activities are named by their key (`act:<key>`) with start/end times, stage, stage and
//! pipeline version and the config subset; agents are the sst1mflow build
//! (`prov:SoftwareAgent`) and the user who ran each activity (`prov:Person`), the software
//! acting on the user's behalf. Relations: `used` and `wasGeneratedBy` (with roles),
//! `wasDerivedFrom` (output from input, via the activity), `wasAssociatedWith`,
//! `actedOnBehalfOf`. Both serialisations are deterministic for a given graph.
use super::query::Graph;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const NS_SST1M: &str = "urn:sst1mflow:ns#";
pub const NS_SHA256: &str = "urn:sha256:";
pub const NS_ACT: &str = "urn:sst1mflow:activity:";
pub const NS_AGENT: &str = "urn:sst1mflow:agent:";

/// One relation record: its PROV type and (attribute, value) pairs in PROV-N argument order.
struct Relation {
    kind: &'static str,
    args: Vec<(&'static str, String)>,
    role: Option<String>,
}

/// PROV attributes in output order.
type Attributes = Vec<(String, Value)>;

struct Doc {
    entities: BTreeMap<String, Attributes>,
    /// id → (start time, end time, attributes)
    activities: BTreeMap<String, (String, String, Attributes)>,
    agents: BTreeMap<String, Attributes>,
    relations: Vec<Relation>,
}

fn agent_id(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    format!("agent:{safe}")
}

fn build(g: &Graph) -> Doc {
    let mut doc =
        Doc { entities: BTreeMap::new(), activities: BTreeMap::new(), agents: BTreeMap::new(), relations: Vec::new() };
    let mut hashes: Vec<&String> = g.products.keys().collect();
    hashes.sort();
    for h in hashes {
        let p = &g.products[h];
        let mut attrs = vec![
            ("prov:type".to_string(), json!({"$": "sst1m:Product", "type": "prov:QUALIFIED_NAME"})),
            ("sst1m:kind".to_string(), json!(p.kind)),
            ("sst1m:size".to_string(), json!(p.size)),
            ("sst1m:sha256".to_string(), json!(p.hash)),
        ];
        if let Some(name) = p.metadata.get("file_name").and_then(Value::as_str) {
            attrs.push(("prov:label".to_string(), json!(name)));
        }
        if p.metadata.as_object().is_some_and(|m| !m.is_empty()) {
            attrs.push(("sst1m:metadata".to_string(), json!(p.metadata.text())));
        }
        if let Some(why) = &p.invalid {
            attrs.push(("sst1m:invalid".to_string(), json!(why)));
        }
        // A raw input read in place: where (PROV's location of an entity; the first place
        // where its bytes were seen).
        if let Some(place) = p.places.first() {
            attrs.push(("prov:location".to_string(), json!(place)));
        }
        doc.entities.insert(format!("sha256:{h}"), attrs);
    }
    let mut ids: Vec<&i64> = g.activities.keys().collect();
    ids.sort_by_key(|id| &g.activities[id].key);
    for id in ids {
        let a = &g.activities[id];
        let act = format!("act:{}", a.key);
        let software = agent_id(&format!("sst1mflow-{}", a.pipeline_version));
        let person = agent_id(&format!("user-{}", a.user));
        doc.agents.insert(
            software.clone(),
            vec![
                ("prov:type".into(), json!({"$": "prov:SoftwareAgent", "type": "prov:QUALIFIED_NAME"})),
                ("sst1m:pipelineVersion".into(), json!(a.pipeline_version)),
            ],
        );
        doc.agents.insert(
            person.clone(),
            vec![
                ("prov:type".into(), json!({"$": "prov:Person", "type": "prov:QUALIFIED_NAME"})),
                ("prov:label".into(), json!(a.user)),
            ],
        );
        let mut attrs = vec![
            ("prov:type".to_string(), json!({"$": "sst1m:StageRun", "type": "prov:QUALIFIED_NAME"})),
            ("sst1m:key".to_string(), json!(a.key)),
            ("sst1m:stage".to_string(), json!(a.stage)),
            ("sst1m:stageVersion".to_string(), json!(a.stage_version)),
            ("sst1m:pipelineVersion".to_string(), json!(a.pipeline_version)),
            ("sst1m:config".to_string(), json!(a.config.text())),
            ("sst1m:parameters".to_string(), json!(a.params.text())),
            ("sst1m:host".to_string(), json!(a.host)),
        ];
        if let Some(why) = &a.invalid {
            attrs.push(("sst1m:invalid".to_string(), json!(why)));
        }
        doc.activities.insert(act.clone(), (a.started_at.clone(), a.ended_at.clone(), attrs));
        for (role, _, h) in &a.inputs {
            if g.products.contains_key(h) {
                doc.relations.push(Relation {
                    kind: "used",
                    args: vec![("prov:activity", act.clone()), ("prov:entity", format!("sha256:{h}"))],
                    role: Some(role.clone()),
                });
            }
        }
        for (role, out) in &a.outputs {
            if !g.products.contains_key(out) {
                continue;
            }
            doc.relations.push(Relation {
                kind: "wasGeneratedBy",
                args: vec![("prov:entity", format!("sha256:{out}")), ("prov:activity", act.clone())],
                role: Some(role.clone()),
            });
            for (_, _, h) in &a.inputs {
                if g.products.contains_key(h) {
                    doc.relations.push(Relation {
                        kind: "wasDerivedFrom",
                        args: vec![
                            ("prov:generatedEntity", format!("sha256:{out}")),
                            ("prov:usedEntity", format!("sha256:{h}")),
                            ("prov:activity", act.clone()),
                        ],
                        role: None,
                    });
                }
            }
        }
        doc.relations.push(Relation {
            kind: "wasAssociatedWith",
            args: vec![("prov:activity", act.clone()), ("prov:agent", software.clone())],
            role: None,
        });
        doc.relations.push(Relation {
            kind: "wasAssociatedWith",
            args: vec![("prov:activity", act.clone()), ("prov:agent", person.clone())],
            role: None,
        });
        doc.relations.push(Relation {
            kind: "actedOnBehalfOf",
            args: vec![("prov:delegate", software), ("prov:responsible", person), ("prov:activity", act)],
            role: None,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    doc.relations.retain(|r| seen.insert((r.kind, r.args.clone(), r.role.clone())));
    doc
}

fn prefixes() -> Value {
    json!({"sst1m": NS_SST1M, "sha256": NS_SHA256, "act": NS_ACT, "agent": NS_AGENT})
}

/// PROV-JSON (W3C member submission layout) of a lineage graph.
pub fn to_prov_json(g: &Graph) -> Value {
    let doc = build(g);
    let obj = |attrs: &[(String, Value)]| Value::Object(attrs.iter().cloned().collect::<Map<_, _>>());
    let mut out = Map::new();
    out.insert("prefix".into(), prefixes());
    out.insert("entity".into(), Value::Object(doc.entities.iter().map(|(k, v)| (k.clone(), obj(v))).collect()));
    let mut acts = Map::new();
    for (id, (start, end, attrs)) in &doc.activities {
        let mut m: Map<String, Value> = attrs.iter().cloned().collect();
        m.insert("prov:startTime".into(), json!(start));
        m.insert("prov:endTime".into(), json!(end));
        acts.insert(id.clone(), Value::Object(m));
    }
    out.insert("activity".into(), Value::Object(acts));
    out.insert("agent".into(), Value::Object(doc.agents.iter().map(|(k, v)| (k.clone(), obj(v))).collect()));
    let mut counters: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &doc.relations {
        let n = counters.entry(r.kind).or_default();
        *n += 1;
        let mut m: Map<String, Value> = r.args.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        if let Some(role) = &r.role {
            m.insert("prov:role".into(), json!(role));
        }
        let section = out.entry(r.kind.to_string()).or_insert_with(|| Value::Object(Map::new()));
        section.as_object_mut().expect("object").insert(format!("_:{}{}", r.kind, n), Value::Object(m));
    }
    Value::Object(out)
}

fn provn_value(v: &Value) -> String {
    match v {
        Value::Object(m) if m.get("type") == Some(&json!("prov:QUALIFIED_NAME")) => {
            format!("'{}'", m["$"].as_str().unwrap_or(""))
        }
        Value::Number(n) => format!("\"{n}\" %% xsd:long"),
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        other => format!("\"{}\"", other.to_string().replace('"', "\\\"")),
    }
}

fn provn_attrs(attrs: &[(String, Value)]) -> String {
    if attrs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={}", provn_value(v))).collect();
    format!(", [{}]", parts.join(", "))
}

/// PROV-N of a lineage graph.
pub fn to_prov_n(g: &Graph) -> String {
    let doc = build(g);
    let mut out = String::from("document\n");
    for (p, uri) in prefixes().as_object().expect("object") {
        let _ = writeln!(out, "  prefix {p} <{}>", uri.as_str().unwrap_or(""));
    }
    for (id, attrs) in &doc.entities {
        let _ = writeln!(out, "  entity({id}{})", provn_attrs(attrs));
    }
    for (id, (start, end, attrs)) in &doc.activities {
        let _ = writeln!(out, "  activity({id}, {start}, {end}{})", provn_attrs(attrs));
    }
    for (id, attrs) in &doc.agents {
        let _ = writeln!(out, "  agent({id}{})", provn_attrs(attrs));
    }
    for r in &doc.relations {
        let role = r.role.as_ref().map(|ro| vec![("prov:role".to_string(), json!(ro))]).unwrap_or_default();
        let a = |i: usize| r.args.get(i).map(|(_, v)| v.clone()).unwrap_or_else(|| "-".into());
        let line = match r.kind {
            "used" => format!("used({}, {}, -{})", a(0), a(1), provn_attrs(&role)),
            "wasGeneratedBy" => format!("wasGeneratedBy({}, {}, -{})", a(0), a(1), provn_attrs(&role)),
            "wasDerivedFrom" => format!("wasDerivedFrom({}, {}, {}, -, -)", a(0), a(1), a(2)),
            "wasAssociatedWith" => format!("wasAssociatedWith({}, {}, -)", a(0), a(1)),
            "actedOnBehalfOf" => format!("actedOnBehalfOf({}, {}, {})", a(0), a(1), a(2)),
            other => format!("// unsupported relation {other}"),
        };
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("endDocument\n");
    out
}
