//! Strict reading of a stage's `params` object: unknown keys are errors with a suggestion,
//! wrong types name the key and what was expected. Defaults live with the stage (and are
//! covered by its version), not in the recipe.
use crate::error::{Error, Result};
use crate::text::suggestion;
use serde_json::{Map, Value};

pub struct Params<'a> {
    map: Map<String, Value>,
    at: &'a str,
    stage: &'a str,
}

impl<'a> Params<'a> {
    pub fn new(params: &Value, known: &[&str], stage: &'a str, at: &'a str) -> Result<Params<'a>> {
        let map = params.as_object().cloned().ok_or_else(|| Error::msg(format!("{at}: params must be an object")))?;
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                return Err(Error::msg(format!(
                    "{at}.params: unknown key \"{k}\" for stage {stage}{}",
                    suggestion(k, known.iter().copied())
                )));
            }
        }
        Ok(Params { map, at, stage })
    }

    fn bad(&self, key: &str, expected: &str) -> Error {
        Error::msg(format!("{}.params.{key}: expected {expected} (stage {})", self.at, self.stage))
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| self.bad(key, "a number")),
        }
    }

    pub fn u64_or(&self, key: &str, default: Option<u64>) -> Result<u64> {
        match (self.map.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => {
                Err(Error::msg(format!("{}.params: missing required key \"{key}\" (stage {})", self.at, self.stage)))
            }
            (Some(v), _) => v.as_u64().or_else(|| exact_integer(v)).ok_or_else(|| {
                let found = if v.is_number() { v.to_string() } else { crate::engine::recipe::type_name(v).to_string() };
                self.bad(key, &format!("a non-negative integer, found {found}"))
            }),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, "true or false")),
        }
    }

    pub fn str_required(&self, key: &str) -> Result<&str> {
        match self.map.get(key) {
            None => {
                Err(Error::msg(format!("{}.params: missing required key \"{key}\" (stage {})", self.at, self.stage)))
            }
            Some(v) => v.as_str().ok_or_else(|| self.bad(key, "a string")),
        }
    }
}

/// A JSON number written as a float (`1e6`, `7E5`) that is an exact non-negative integer, as
/// Python's `int()` takes it; None for fractions, negatives and values beyond 2^53 (where a
/// float no longer counts exactly).
fn exact_integer(v: &Value) -> Option<u64> {
    let x = v.as_f64()?;
    (x >= 0.0 && x.fract() == 0.0 && x <= (1u64 << 53) as f64).then_some(x as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_written_as_floats_count_and_the_error_says_what_was_found() {
        let p = |v: Value| Params::new(&serde_json::json!({"n": v}), &["n"], "s", "at").unwrap().u64_or("n", None);
        assert_eq!(p(serde_json::json!(1e6)).unwrap(), 1_000_000);
        assert_eq!(p(serde_json::json!(12)).unwrap(), 12);
        for (bad, found) in
            [(serde_json::json!(7.5), "7.5"), (serde_json::json!(-5), "-5"), (serde_json::json!("10"), "a string")]
        {
            let e = p(bad).unwrap_err().message().to_string();
            assert!(e.contains("expected a non-negative integer") && e.contains(found), "{e}");
        }
    }
}
