//! The `dl3-index` stage: a gammapy data store from DL3 files of one night or many
//! (sst1mpipe's `create_hdu_indexes` use case), readable with `DataStore.from_dir(folder)` and
//! no environment variables.
//!
//! Input: `dl3` (any number of `dl2-dl3` products; obs ids must differ). No config, no
//! parameters. Outputs, side by side in the step's view folder:
//!
//! - `observations.fits`: every observation's `EVENTS` and `GTI` (renamed `EVENTS_<obs_id>`,
//!   `GTI_<obs_id>`) and the IRF HDUs they carry, once per IRF product (renamed
//!   `<EXTNAME>_<first 12 hex of the IRF's activity key>`), all byte for byte otherwise.
//!   One file because a step's outputs are declared before it runs, and a data store needs its
//!   files beside its index; the per-observation DL3 files stay the `dl2-dl3` products.
//! - `hdu-index.fits.gz` (`HDU_INDEX`): OBS_ID, HDU_TYPE, HDU_CLASS (`events`, `gti`,
//!   `aeff_2d`, `edisp_2d`, `psf_table`, `bkg_2d`: our IRFs' true classes, which sst1mpipe has
//!   to patch after gammapy writes `psf_3gauss`/`bkg_3d`), FILE_DIR (`.`), FILE_NAME, HDU_NAME.
//! - `obs-index.fits.gz` (`OBS_INDEX`): one row per observation with pointing, times,
//!   durations, target, telescope, event count and IRF node; the time reference and site in
//!   the header.
//!
//! Gzip with modification time 0: the same DL3 inputs give the same bytes.
use super::{DeclaredOutput, Stage, StageContext, StagePlan};
use crate::error::{Error, Result};
use crate::io::fits::{self, BinTable, Card, Column, ColumnData, RawHdu, Value as Fv};
use crate::io::gadf;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct Dl3IndexStage;

const BUNDLE: &str = "observations.fits";

/// (HDU_TYPE, HDU_CLASS) of each IRF HDU a DL3 file carries.
const IRF_CLASSES: [(&str, &str, &str); 4] = [
    ("EFFECTIVE AREA", "aeff", "aeff_2d"),
    ("ENERGY DISPERSION", "edisp", "edisp_2d"),
    ("POINT SPREAD FUNCTION", "psf", "psf_table"),
    ("BACKGROUND", "bkg", "bkg_2d"),
];

/// What the indexes need from one DL3 file.
struct Observation {
    name: String,
    obs_id: i64,
    events: RawHdu,
    gti: RawHdu,
    irf_key: String,
    irfs: Vec<RawHdu>,
    n_events: i64,
}

fn read_dl3(path: &std::path::Path, name: &str) -> Result<Observation> {
    let what = format!("DL3 input {name}");
    let hdus = fits::read_file(path, &what)?;
    let find = |ext: &str| {
        hdus.iter()
            .find(|h| h.extname() == ext)
            .cloned()
            .ok_or_else(|| Error::msg(format!("{what}: no {ext} HDU; is it a dl2-dl3 product?")))
    };
    let events = find("EVENTS")?;
    let gti = find("GTI")?;
    let obs_id = events.number("OBS_ID").ok_or_else(|| Error::msg(format!("{what}: EVENTS has no OBS_ID")))? as i64;
    let irf_key = events
        .string("IRFKEY")
        .filter(|k| k.len() == 64)
        .ok_or_else(|| Error::msg(format!("{what}: EVENTS has no IRFKEY card; not an sst1mflow DL3 file")))?;
    let irfs = IRF_CLASSES.iter().map(|(ext, _, _)| find(ext)).collect::<Result<Vec<_>>>()?;
    let n_events = events.number("NAXIS2").unwrap_or(0.0) as i64;
    Ok(Observation { name: name.to_string(), obs_id, events, gti, irf_key, irfs, n_events })
}

fn strings(values: Vec<String>) -> ColumnData {
    let width = values.iter().map(String::len).max().unwrap_or(1).max(1);
    ColumnData::Str { width, values }
}

fn index_cards(class2: &str) -> Vec<Card> {
    gadf::hdu_class_cards("0.3", &["INDEX", class2])
}

/// Header cards copied from the first observation's EVENTS into the obs index (time
/// reference and site), with their values checked equal across observations.
const SHARED_KEYS: [&str; 8] = ["MJDREFI", "MJDREFF", "TIMEUNIT", "TIMESYS", "TIMEREF", "GEOLON", "GEOLAT", "ALTITUDE"];

fn card_from(h: &RawHdu, key: &str) -> Option<Card> {
    if let Some(v) = h.string(key) {
        return Some(Card::new(key, Fv::Str(v), ""));
    }
    let v = h.number(key)?;
    Some(if key == "MJDREFI" { Card::new(key, Fv::Int(v as i64), "") } else { Card::new(key, Fv::Float(v), "") })
}

impl Stage for Dl3IndexStage {
    fn name(&self) -> &'static str {
        "dl3-index"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        super::params::Params::new(params, &[], "dl3-index", at)?;
        if input_roles != ["dl3"] {
            return Err(Error::msg(format!("{at}: stage dl3-index takes one input role, \"dl3\" (dl2-dl3 products)")));
        }
        let out = |role: &str, file: &str, kind: &str| DeclaredOutput {
            role: role.into(),
            file: file.into(),
            kind: kind.into(),
        };
        Ok(StagePlan {
            config_keys: Vec::new(),
            config_read: Vec::new(),
            outputs: vec![
                out("observations", BUNDLE, "dl3-bundle"),
                out("hdu_index", "hdu-index.fits.gz", "dl3-hdu-index"),
                out("obs_index", "obs-index.fits.gz", "dl3-obs-index"),
            ],
        })
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let inputs = ctx.inputs.get("dl3").map(Vec::as_slice).unwrap_or(&[]);
        if inputs.is_empty() {
            return Err(Error::msg("dl3-index needs at least one DL3 file"));
        }
        let mut obs: Vec<Observation> = inputs.iter().map(|i| read_dl3(&i.path, &i.name)).collect::<Result<_>>()?;
        obs.sort_by_key(|o| o.obs_id);
        for w in obs.windows(2) {
            if w[0].obs_id == w[1].obs_id {
                return Err(Error::msg(format!(
                    "DL3 inputs {} and {} have the same obs id {}: a data store needs each observation once",
                    w[0].name, w[1].name, w[0].obs_id
                )));
            }
        }
        let first = &obs[0].events;
        let shared: Vec<Card> = SHARED_KEYS.iter().filter_map(|k| card_from(first, k)).collect();
        for o in &obs[1..] {
            for c in &shared {
                if card_from(&o.events, &c.key).map(|x| x.value) != Some(c.value.clone()) {
                    return Err(Error::msg(format!(
                        "DL3 inputs {} and {} differ in {} (time reference or site): one index needs one",
                        obs[0].name, o.name, c.key
                    )));
                }
            }
        }

        // The bundle and the HDU index.
        let mut hdus: Vec<RawHdu> = Vec::new();
        let mut irf_names: BTreeMap<(String, &str), String> = BTreeMap::new();
        let (mut ids, mut types, mut classes, mut names) = (vec![], vec![], vec![], vec![]);
        for o in &obs {
            let mut add = |hdu_type: &str, class: &str, name: String| {
                ids.push(o.obs_id);
                types.push(hdu_type.to_string());
                classes.push(class.to_string());
                names.push(name);
            };
            let events_name = format!("EVENTS_{}", o.obs_id);
            let gti_name = format!("GTI_{}", o.obs_id);
            hdus.push(o.events.renamed(&events_name)?);
            hdus.push(o.gti.renamed(&gti_name)?);
            add("events", "events", events_name);
            add("gti", "gti", gti_name);
            for (hdu, (ext, hdu_type, class)) in o.irfs.iter().zip(IRF_CLASSES) {
                let key = (o.irf_key.clone(), ext);
                let name = match irf_names.get(&key) {
                    Some(n) => n.clone(),
                    None => {
                        let n = format!("{ext}_{}", crate::text::short(&o.irf_key, 12));
                        hdus.push(hdu.renamed(&n)?);
                        irf_names.insert(key, n.clone());
                        n
                    }
                };
                add(hdu_type, class, name);
            }
        }
        let s = |v: &str| Fv::Str(v.into());
        let mut primary = gadf::software_cards(self.name(), ctx.pipeline_version);
        primary.push(Card::new("NOBS", Fv::Int(obs.len() as i64), "observations in this file"));
        primary.extend(gadf::activity_key_cards(ctx.activity_key));
        let bundle_refs: Vec<&RawHdu> = hdus.iter().collect();
        fits::write_with_copies(&ctx.work_dir.join(BUNDLE), &primary, &[], &bundle_refs)?;

        let n = ids.len();
        let mut hdu_cards = index_cards("HDU");
        hdu_cards.push(Card::new("S1MKEY", s(ctx.activity_key), "activity that made this file"));
        let hdu_index = BinTable {
            extname: "HDU_INDEX".into(),
            n_rows: n,
            columns: vec![
                Column::new("OBS_ID", "", ColumnData::I64(ids)),
                Column::new("HDU_TYPE", "", strings(types)),
                Column::new("HDU_CLASS", "", strings(classes)),
                Column::new("FILE_DIR", "", strings(vec![".".to_string(); n])),
                Column::new("FILE_NAME", "", strings(vec![BUNDLE.to_string(); n])),
                Column::new("HDU_NAME", "", strings(names)),
            ],
            cards: hdu_cards,
        };
        primary.retain(|c| c.key != "NOBS");
        write_gz(&ctx.work_dir.join("hdu-index.fits.gz"), &primary, hdu_index)?;

        // The observation index.
        let num = |o: &Observation, k: &str| o.events.number(k).unwrap_or(f64::NAN);
        let text = |o: &Observation, k: &str| o.events.string(k).unwrap_or_default();
        let f64s = |k: &str| ColumnData::F64(obs.iter().map(|o| num(o, k)).collect());
        let texts = |k: &str| strings(obs.iter().map(|o| text(o, k)).collect());
        let mut obs_cards = index_cards("OBS");
        obs_cards.extend(shared);
        let obs_index = BinTable {
            extname: "OBS_INDEX".into(),
            n_rows: obs.len(),
            columns: vec![
                Column::new("OBS_ID", "", ColumnData::I64(obs.iter().map(|o| o.obs_id).collect())),
                Column::new("RA_PNT", "deg", f64s("RA_PNT")),
                Column::new("DEC_PNT", "deg", f64s("DEC_PNT")),
                Column::new("ALT_PNT", "deg", f64s("ALT_PNT")),
                Column::new("AZ_PNT", "deg", f64s("AZ_PNT")),
                Column::new("ZEN_PNT", "deg", ColumnData::F64(obs.iter().map(|o| 90.0 - num(o, "ALT_PNT")).collect())),
                Column::new("TSTART", "s", f64s("TSTART")),
                Column::new("TSTOP", "s", f64s("TSTOP")),
                Column::new("ONTIME", "s", f64s("ONTIME")),
                Column::new("LIVETIME", "s", f64s("LIVETIME")),
                Column::new("DEADC", "", f64s("DEADC")),
                Column::new("OBS_MODE", "", texts("OBS_MODE")),
                Column::new("OBJECT", "", texts("OBJECT")),
                Column::new("RA_OBJ", "deg", f64s("RA_OBJ")),
                Column::new("DEC_OBJ", "deg", f64s("DEC_OBJ")),
                Column::new("TELESCOP", "", texts("TELESCOP")),
                Column::new("N_TELS", "", ColumnData::I64(obs.iter().map(|o| num(o, "N_TELS") as i64).collect())),
                Column::new("TELLIST", "", texts("TELLIST")),
                Column::new("EVENT_COUNT", "", ColumnData::I64(obs.iter().map(|o| o.n_events).collect())),
                Column::new("DATE-OBS", "", texts("DATE-OBS")),
                Column::new("TIME-OBS", "", texts("TIME-OBS")),
                Column::new("DATE-END", "", texts("DATE-END")),
                Column::new("TIME-END", "", texts("TIME-END")),
                Column::new("IRF", "", texts("IRF")),
            ],
            cards: obs_cards,
        };
        write_gz(&ctx.work_dir.join("obs-index.fits.gz"), &primary, obs_index)?;
        let _ = writeln!(
            ctx.log,
            "{} observation(s) ({}), {} IRF set(s), {} HDUs in {BUNDLE}",
            obs.len(),
            obs.iter().map(|o| o.obs_id.to_string()).collect::<Vec<_>>().join(", "),
            irf_names.len() / IRF_CLASSES.len(),
            hdus.len()
        );
        Ok(())
    }
}

fn write_gz(path: &std::path::Path, primary: &[Card], table: BinTable) -> Result<()> {
    let bytes = fits::gzip(&fits::file_bytes(primary, &[table])?)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}
