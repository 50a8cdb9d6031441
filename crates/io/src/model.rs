//! Model files on disk: a [`sst1mflow_science::forest::format`] file whose JSON header is a
//! [`ModelHeader`], saying what the forest predicts from which features, what DL1 it was
//! trained on (settings and pipeline version, for the application contract), which inputs
//! (by hash) and configuration shaped the training set, and which activity made it.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sst1mflow_base::error::{Error, Result};
use sst1mflow_science::forest::{format, Forest, Task};
use std::collections::BTreeMap;
use std::path::Path;

/// One training input, by content.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct InputRecord {
    pub role: String,
    pub name: String,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// `energy`, `disp_norm`, `disp_sign` or `gh`.
    pub model: String,
    /// The training target column.
    pub target: String,
    /// For classifiers, the target values of class index 0 and 1.
    pub classes: Option<Vec<i64>>,
    /// Feature columns, in the order the forest expects them.
    pub features: Vec<String>,
    /// The forest arguments as the config gave them.
    pub forest_args: Value,
    pub tel_id: u16,
    /// The settings and pipeline version of the DL1 the model was trained on.
    pub dl1_settings: BTreeMap<String, Value>,
    pub dl1_pipeline_version: String,
    /// Config that shaped the training set (event selection, sampling), and the set's size.
    pub training: Value,
    pub inputs: Vec<InputRecord>,
    pub pipeline_version: String,
    /// The activity that trained it (one activity trains a set of models together).
    pub activity_key: String,
}

pub struct Model {
    pub header: ModelHeader,
    pub forest: Forest,
}

impl Model {
    /// The task the header promises, checked against the forest.
    fn check(&self) -> std::result::Result<(), String> {
        let h = &self.header;
        if h.features.len() != self.forest.n_features {
            return Err(format!(
                "header lists {} features, the forest uses {}",
                h.features.len(),
                self.forest.n_features
            ));
        }
        match (self.forest.task, &h.classes) {
            (Task::Classification, Some(c)) if c.len() == 2 => Ok(()),
            (Task::Regression, None) => Ok(()),
            _ => Err("header classes do not match the forest's task".into()),
        }
    }
}

pub fn write(path: &Path, model: &Model) -> Result<()> {
    model.check().map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let header = serde_json::to_value(&model.header).map_err(|e| Error::msg(format!("model header: {e}")))?;
    std::fs::write(path, format::encode(&model.forest, &header))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

pub fn read(path: &Path, shown_as: &str) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read model {shown_as}"), e))?;
    let (header, forest) = format::decode(&bytes).map_err(|e| Error::msg(format!("model {shown_as}: {e}")))?;
    let header: ModelHeader = serde_json::from_value(header)
        .map_err(|e| Error::msg(format!("model {shown_as}: header is not an sst1mflow model header: {e}")))?;
    let model = Model { header, forest };
    model.check().map_err(|e| Error::msg(format!("model {shown_as}: {e}")))?;
    Ok(model)
}
