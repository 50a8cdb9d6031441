//! Activity keys: the identity of one run of one stage, and the sole basis of reuse.
//!
//! Two activities with the same key are the same computation; the engine records the outputs
//! of the first and hands them back for every later one. So everything that can change an
//! output's bytes must be in the key, and nothing that cannot (paths, times, hosts) may be, or
//! copies and re-clones would rerun for nothing.
//!
//! # What is in the key
//!
//! | component                | encoded as                                   | why                                      |
//! |--------------------------|----------------------------------------------|------------------------------------------|
//! | domain tag               | the bytes `sst1mflow-activity-key`           | a key can never equal another hash kind  |
//! | key-schema version       | `KEY_SCHEMA_VERSION` as decimal text         | a change to this encoding changes all keys, never aliases old ones |
//! | stage name               | UTF-8                                        | different algorithm                      |
//! | stage algorithm version  | UTF-8, declared by the stage                 | a bug fix in one stage reruns that stage |
//! | pipeline version         | [`crate::Pipeline::version`] (the application's)| crate version + git commit (+ `.dirty-…`)|
//! | config subset            | canonical JSON of the keys the stage applies ([`crate::stage::StagePlan::config_keys`], decided with the config at planning, [`crate::stage::Stage::plan_with_config`], and narrowed once the inputs exist when they decide it, [`crate::stage::Stage::config_for_inputs`]: one telescope's entry of a section) | a config change reruns only the stages it changes |
//! | stage parameters         | canonical JSON of the recipe's `params`      | argv, declared outputs, seeds, …         |
//! | inputs                   | count, then per input: role, position, SHA-256 of content, sorted by (role, position) | content, not path or mtime |
//!
//! Every component is written as an 8-byte little-endian length followed by its bytes, so no
//! two different component lists can encode to the same byte string (plain concatenation
//! would let `("ab","c")` collide with `("a","bc")`). The key is the lowercase hex SHA-256 of
//! that encoding.
//!
//! # What is not in the key
//!
//! | left out                       | why                                                         |
//! |--------------------------------|-------------------------------------------------------------|
//! | input paths, file names, mtimes| a moved, copied or touched file with the same bytes is the same input |
//! | config keys the stage does not read | editing them must not rerun the stage                  |
//! | config keys the stage reads without applying them ([`crate::stage::StagePlan::config_read`]: checked at planning, e.g. forests' `n_jobs`, another telescope's entry, a method's settings the step does not select) | a key that cannot change an output must not cause a rerun; a value that would is refused at planning instead |
//! | wall-clock time, host, user, PID | not part of the computation; recorded on the activity instead |
//! | recipe name, step name, fan-out label | the same computation under two names is one activity |
//! | the number of worker threads   | stages must give identical bytes for any `-j`              |
//! | environment variables          | not captured; a command whose output depends on one should take it as a parameter |
//!
//! # Canonical JSON
//!
//! Objects with keys sorted by their UTF-8 bytes, no insignificant whitespace, strings escaped
//! as serde_json escapes them, and one number format: an integral value with magnitude below
//! 2^53 is written as a plain integer (so `1`, `1.0` and `1e0` are the same config), any other
//! number in Rust's shortest round-trip scientific form (`0.001` and `1e-3` both become `1e-3`).
//! Negative zero is written as `0`.
use crate::stage::InputFile;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bump when the encoding below changes; every key changes with it.
pub const KEY_SCHEMA_VERSION: u32 = 1;

const DOMAIN_TAG: &[u8] = b"sst1mflow-activity-key";

/// Everything the key is computed from.
#[derive(Clone, Debug)]
pub struct KeyMaterial<'a> {
    pub stage: &'a str,
    pub stage_version: &'a str,
    pub pipeline_version: &'a str,
    /// Canonical JSON of the config subset (see [`canonical_json`]).
    pub config: &'a str,
    /// Canonical JSON of the stage parameters.
    pub params: &'a str,
    /// Only their role, position and content hash enter the key (not path or name).
    pub inputs: &'a [InputFile],
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// The activity key: lowercase hex SHA-256 of the length-prefixed encoding.
pub fn activity_key(m: &KeyMaterial) -> String {
    let mut inputs: Vec<&InputFile> = m.inputs.iter().collect();
    inputs.sort_by(|a, b| (&a.role, a.position, &a.hash).cmp(&(&b.role, b.position, &b.hash)));
    let mut buf = Vec::with_capacity(256 + 100 * inputs.len());
    put(&mut buf, DOMAIN_TAG);
    put(&mut buf, KEY_SCHEMA_VERSION.to_string().as_bytes());
    put(&mut buf, m.stage.as_bytes());
    put(&mut buf, m.stage_version.as_bytes());
    put(&mut buf, m.pipeline_version.as_bytes());
    put(&mut buf, m.config.as_bytes());
    put(&mut buf, m.params.as_bytes());
    put(&mut buf, inputs.len().to_string().as_bytes());
    for input in inputs {
        put(&mut buf, input.role.as_bytes());
        put(&mut buf, input.position.to_string().as_bytes());
        put(&mut buf, input.hash.as_bytes());
    }
    hex(&Sha256::digest(&buf))
}

/// Lowercase hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Canonical JSON text of a value (see the module documentation).
/// A value as its canonical text says it: what a stage is handed, so that it sees exactly what
/// the key saw (`1.0` and `1` are one number in a key, so they must be one number to the stage
/// too; a stage that echoes its settings into a product then writes the same bytes in every run
/// and in `reproduce`, which has only the recorded canonical text). Returns it with that text.
pub fn canonical_value(value: &Value) -> (Value, String) {
    let text = canonical_json(value);
    let parsed = serde_json::from_str(&text).expect("canonical JSON parses");
    (parsed, text)
}

pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => out.push_str(&serde_json::to_string(s).expect("string serialises")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut String) {
    use std::fmt::Write;
    const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if let Some(i) = n.as_i64() {
        if (i as f64).abs() < EXACT_INT_LIMIT {
            let _ = write!(out, "{i}");
            return;
        }
    }
    if let Some(u) = n.as_u64() {
        if (u as f64) < EXACT_INT_LIMIT {
            let _ = write!(out, "{u}");
            return;
        }
    }
    let x = n.as_f64().expect("JSON numbers are finite");
    if x.fract() == 0.0 && x.abs() < EXACT_INT_LIMIT {
        let _ = write!(out, "{}", x as i64);
    } else {
        let _ = write!(out, "{x:e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(role: &str, position: u32, hash: &str) -> InputFile {
        InputFile { role: role.into(), position, hash: hash.into(), path: "/nowhere".into(), name: "in".into() }
    }

    fn material<'a>(inputs: &'a [InputFile], config: &'a str) -> KeyMaterial<'a> {
        KeyMaterial { stage: "r0-dl1", stage_version: "1", pipeline_version: "0.1.0+abc", config, params: "{}", inputs }
    }

    #[test]
    fn canonical_json_sorts_keys_and_unifies_numbers() {
        let a: Value = serde_json::from_str(r#"{"b": 1.0, "a": {"y": 0.001, "x": [1e0, -0.0]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":[1,0],"y":1e-3},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":[1,0],"y":1e-3},"b":1}"#);
        assert_eq!(canonical_json(&json!(2.5)), "2.5e0");
        assert_eq!(canonical_json(&json!(1e300)), "1e300");
        assert_ne!(canonical_json(&json!(0.1)), canonical_json(&json!(0.10000000000000002)));
    }

    #[test]
    fn key_is_length_prefixed_not_concatenated() {
        let one = [input("ab", 0, "c")];
        let two = [input("a", 0, "bc")];
        assert_ne!(activity_key(&material(&one, "{}")), activity_key(&material(&two, "{}")));
        // Stage name vs version boundary.
        let mut m1 = material(&[], "{}");
        m1.stage = "r0-dl11";
        m1.stage_version = "";
        let mut m2 = material(&[], "{}");
        m2.stage = "r0-dl1";
        m2.stage_version = "1";
        assert_ne!(activity_key(&m1), activity_key(&m2));
    }

    #[test]
    fn key_ignores_input_order_but_not_content_or_role() {
        let x = input("gammas", 0, "11");
        let y = input("protons", 0, "22");
        let k1 = activity_key(&material(&[x.clone(), y.clone()], "{}"));
        let k2 = activity_key(&material(&[y.clone(), x.clone()], "{}"));
        assert_eq!(k1, k2);
        let swapped = [input("gammas", 0, "22"), input("protons", 0, "11")];
        assert_ne!(k1, activity_key(&material(&swapped, "{}")));
        assert_ne!(k1, activity_key(&material(&[x, y], r#"{"a":1}"#)));
        assert_eq!(k1.len(), 64);
    }

    #[test]
    fn key_changes_with_every_version_component() {
        let base = material(&[], "{}");
        let k = activity_key(&base);
        let mut m = base.clone();
        m.pipeline_version = "0.1.0+abd";
        assert_ne!(k, activity_key(&m));
        let mut m = base.clone();
        m.stage_version = "2";
        assert_ne!(k, activity_key(&m));
        let mut m = base;
        m.params = r#"{"seed":1}"#;
        assert_ne!(k, activity_key(&m));
    }
}
