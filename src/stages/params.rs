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
            (Some(v), _) => v.as_u64().ok_or_else(|| self.bad(key, "a non-negative integer")),
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
