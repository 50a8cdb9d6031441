//! The header cards of our GADF products (IRFs, DL3 event lists, DL3 index files), written and
//! read in one place: the HDU class cards GADF defines, and sst1mflow's provenance cards, which
//! are what `dl2-dl3` checks an IRF against and what `lineage` finds in a copied file.
//!
//! | card           | meaning                                                        | written by |
//! |----------------|----------------------------------------------------------------|------------|
//! | `CREATOR`      | software that created the file: `sst1mflow <stage>`           | all        |
//! | `ORIGIN`       | organisation: `SST-1M Collaboration`                          | all        |
//! | `S1MVER`       | the pipeline version                                           | all        |
//! | `GH_CUT`       | the global gammaness cut (a number) or `energy-dependent`      | IRFs, DL3  |
//! | `CUTTABLE`     | SHA-256 of the gh-cuts table, for an energy-dependent cut      | IRFs, DL3  |
//! | `EVTSEL`       | the `event_selection` config section, as JSON                  | IRFs, DL3  |
//! | `RFMODELS`     | the RF models behind the DL2, as JSON                          | IRFs, DL3  |
//! | `S1MNOTE`, `S1MKEY` | a marker, then the activity key of the file             | all        |
//!
//! The marker card comes right before the key so that the key can be found in the raw bytes of
//! a copy (`provenance::query::find_embedded_key`).
use crate::fits::{Card, RawHdu, Value as Fv};
use serde_json::Value;
use sst1mflow_base::error::{Error, Result};
use sst1mflow_science::reco::EventSelection;

pub const HDUDOC: &str = "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats";
pub const ORIGIN: &str = "SST-1M Collaboration";

fn text(key: &str, value: &str, comment: &str) -> Card {
    Card::new(key, Fv::Str(value.into()), comment)
}

/// `HDUCLASS = GADF`, `HDUDOC`, `HDUVERS = version`, then `HDUCLAS1`… for each class in order.
pub fn hdu_class_cards(version: &str, classes: &[&str]) -> Vec<Card> {
    let mut cards = vec![text("HDUCLASS", "GADF", ""), text("HDUDOC", HDUDOC, ""), text("HDUVERS", version, "")];
    for (i, class) in classes.iter().enumerate() {
        cards.push(text(&format!("HDUCLAS{}", i + 1), class, ""));
    }
    cards
}

/// Which gammaness cut made a product: what IRFs and event lists must share.
#[derive(Clone, Debug, PartialEq)]
pub enum CutIdentity {
    /// One cut for every energy: gammaness > cut.
    Global(f64),
    /// An energy-dependent cut, identified by the content hash of its gh-cuts table.
    Table { sha256: String },
}

impl CutIdentity {
    /// For people: "global gammaness > 0.7" or "cut table 3f2a…" (16 hex digits).
    pub fn describe(&self) -> String {
        match self {
            CutIdentity::Global(c) => format!("global gammaness > {c}"),
            CutIdentity::Table { sha256 } => format!("cut table {}", &sha256[..sha256.len().min(16)]),
        }
    }

    pub fn cards(&self) -> Vec<Card> {
        match self {
            CutIdentity::Global(c) => {
                vec![Card::new("GH_CUT", Fv::Float(*c), "global gammaness cut (gammaness > cut)")]
            }
            CutIdentity::Table { sha256 } => vec![
                text("GH_CUT", "energy-dependent", "gammaness >= cut of the reco-energy bin"),
                text("CUTTABLE", sha256, "SHA-256 of the gh-cuts table"),
            ],
        }
    }

    /// The identity from a header written by [`CutIdentity::cards`]; `None` if it has neither card.
    pub fn from_header(h: &RawHdu) -> Option<CutIdentity> {
        match h.number("GH_CUT") {
            Some(c) => Some(CutIdentity::Global(c)),
            None => h.string("CUTTABLE").map(|sha256| CutIdentity::Table { sha256 }),
        }
    }
}

/// `CREATOR`, `ORIGIN` and `S1MVER`: who made the file, for every product.
pub fn software_cards(stage: &str, pipeline_version: &str) -> Vec<Card> {
    vec![
        text("CREATOR", &format!("sst1mflow {stage}"), "software that created the file"),
        text("ORIGIN", ORIGIN, "organisation that created the FITS file"),
        text("S1MVER", pipeline_version, "sst1mflow pipeline version"),
    ]
}

/// The analysis behind the events or IRFs: cut, event selection and RF models.
pub fn analysis_cards(cut: &CutIdentity, selection: &EventSelection, models: &str, models_comment: &str) -> Vec<Card> {
    let mut cards = cut.cards();
    cards.push(text("EVTSEL", &selection.header_form(), "event_selection"));
    cards.push(text("RFMODELS", &model_identities(models), models_comment));
    cards
}

/// The models as headers record them: each model's name, file hash, training activity and
/// version (per telescope for stereo), without what a DL2 keeps for comparing trainings
/// (features, forest arguments, training-set rules), which would swell every header.
fn model_identities(models: &str) -> String {
    const KEPT_ELSEWHERE: [&str; 3] = ["features", "forest_args", "training"];
    let Ok(mut v) = serde_json::from_str::<Value>(models) else {
        return models.to_string();
    };
    fn strip(v: &mut Value, depth: usize) {
        if let Some(o) = v.as_object_mut() {
            if o.contains_key("sha256") {
                o.retain(|k, _| !KEPT_ELSEWHERE.contains(&k.as_str()));
            } else if depth < 2 {
                o.values_mut().for_each(|w| strip(w, depth + 1));
            }
        }
    }
    strip(&mut v, 0);
    v.to_string()
}

/// The marker and the activity key, last among a product's provenance cards.
pub fn activity_key_cards(activity_key: &str) -> Vec<Card> {
    vec![
        text("S1MNOTE", "sst1mflow_activity_key follows", ""),
        text("S1MKEY", activity_key, "activity that made this file"),
    ]
}

/// Reads a header card written as JSON text (`EVTSEL`, `RFMODELS`): empty text is null.
/// `what` names the file for the error.
pub fn json_card(h: &RawHdu, key: &str, what: &str) -> Result<Value> {
    let text = h.string(key).ok_or_else(|| missing(key, what))?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| Error::msg(format!("{what}: header card {key} is not JSON: {e}")))
}

/// The event selection a product was made with (`EVTSEL`); `None` when the card is empty.
pub fn event_selection(h: &RawHdu, what: &str) -> Result<Option<EventSelection>> {
    let text = h.string("EVTSEL").ok_or_else(|| missing("EVTSEL", what))?;
    if text.is_empty() {
        return Ok(None);
    }
    EventSelection::from_header_form(&text)
        .map(Some)
        .map_err(|e| Error::msg(format!("{what}: header card EVTSEL: {e}")))
}

/// The error for a provenance card a product should have.
pub fn missing(key: &str, what: &str) -> Error {
    Error::msg(format!("{what}: header card {key} is missing; not an sst1mflow product (or an old one)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::{self, BinTable, Column, ColumnData};

    #[test]
    fn cards_read_back() {
        let dir = std::env::temp_dir().join(format!("sst1mflow-gadf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.fits");
        let table = CutIdentity::Table { sha256: "ab".repeat(32) };
        let selection =
            EventSelection::parse(&serde_json::json!({"intensity": [50, 1e9], "leakage": [0, 0.2]})).unwrap();
        let mut cards = hdu_class_cards("0.2", &["RESPONSE", "EFF_AREA"]);
        cards.extend(software_cards("make-irfs", "0.1.0+x"));
        cards.extend(analysis_cards(&table, &selection, "{\"gh\": 1}", "RF models"));
        cards.extend(activity_key_cards(&"cd".repeat(32)));
        let t = BinTable {
            extname: "T".into(),
            n_rows: 1,
            columns: vec![Column::new("X", "", ColumnData::F32(vec![1.0]))],
            cards,
        };
        fits::write(&path, &[], &[t]).unwrap();
        let hdus = fits::read_file(&path, "t.fits").unwrap();
        let h = &hdus[1];
        assert_eq!(h.string("HDUCLAS2").as_deref(), Some("EFF_AREA"));
        assert_eq!(h.string("CREATOR").as_deref(), Some("sst1mflow make-irfs"));
        assert_eq!(CutIdentity::from_header(h), Some(table.clone()));
        assert_eq!(event_selection(h, "t.fits").unwrap(), Some(selection));
        assert_eq!(json_card(h, "RFMODELS", "t.fits").unwrap()["gh"], 1);
        assert!(json_card(h, "NOPE", "t.fits").unwrap_err().to_string().contains("NOPE is missing"));
        assert_eq!(table.describe(), format!("cut table {}", "ab".repeat(8)));
        assert_eq!(CutIdentity::Global(0.7).describe(), "global gammaness > 0.7");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
