//! Reading the JSON files users write (recipes, configs) strictly: a key given twice in one
//! object is refused, naming it (serde_json keeps the last silently, so a user who pasted a
//! section twice would run with settings they did not look at), and the file is read with a
//! bound, so a device or a huge file given by mistake is refused instead of read forever.
use crate::error::{Error, Result};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest recipe or config file read (they are hand-written; 16 MiB is far beyond any).
pub const MAX_USER_FILE_BYTES: u64 = 16 << 20;

/// Reads a user's JSON file: a regular file of at most [`MAX_USER_FILE_BYTES`], valid JSON with
/// no duplicate keys. `what` says what the file is ("recipe", "config") in errors.
pub fn read_user_file(path: &Path, what: &str) -> Result<Value> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("cannot read {what} {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(Error::msg(format!("{what} {}: not a regular file", path.display())));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(format!("cannot read {what} {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_USER_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("cannot read {what} {}", path.display()), e))?;
    if bytes.len() as u64 > MAX_USER_FILE_BYTES {
        return Err(Error::msg(format!(
            "{what} {}: larger than {} MiB; not a {what} file",
            path.display(),
            MAX_USER_FILE_BYTES >> 20
        )));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| Error::msg(format!("{what} {}: not UTF-8 text", path.display())))?;
    parse_strict(&text).map_err(|e| Error::msg(format!("{what} {}: {e}", path.display())))
}

/// Parses JSON, refusing an object that gives a key twice ("duplicate key \"a.b\" (line 3)").
pub fn parse_strict(text: &str) -> std::result::Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = StrictValue { path: String::new() }.deserialize(&mut de).map_err(|e| format!("not valid JSON: {e}"))?;
    de.end().map_err(|e| format!("not valid JSON: {e}"))?;
    Ok(v)
}

struct StrictValue {
    /// Dotted path of the value being read, for the duplicate-key message.
    path: String,
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, out.len());
            match seq.next_element_seed(StrictValue { path })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key \"{path}\"")));
            }
            let v = map.next_value_seed(StrictValue { path })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_with_their_path_and_values_equal_serde_json() {
        let text = r#"{"a": {"b": 1, "c": [1, 2.5, {"d": null}]}, "e": "x", "big": 18446744073709551615, "f": 7E5}"#;
        assert_eq!(parse_strict(text).unwrap(), serde_json::from_str::<Value>(text).unwrap());
        let e = parse_strict("{\"a\": {\"b\": 1,\n \"b\": 2}}").unwrap_err();
        assert!(e.contains("duplicate key \"a.b\"") && e.contains("line 2"), "{e}");
        let e = parse_strict(r#"{"l": [{"x": 1, "x": 1}]}"#).unwrap_err();
        assert!(e.contains("duplicate key \"l[0].x\""), "{e}");
        assert!(parse_strict("{} {}").unwrap_err().contains("not valid JSON"));
    }
}
