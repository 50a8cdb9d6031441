//! Nightly processing: a night of raw SST-1M runs of both telescopes to DL3, as sst1mpipe's
//! `daily_analysis.py` does it every morning, but through the engine, so that every product
//! has its provenance, a second pass over the same night reuses everything, and a run that
//! arrives late redoes only its own chain and the DL3 and index it belongs to.
//!
//! The shape follows from that last property. The night is not processed by code that calls
//! the stages itself: it is *planned* into a recipe (`nightly-YYYYMMDD`, written under the
//! store's `nightly/` folder so it can be rerun, inspected and diffed) and the recipe is run
//! by the engine like any other. Every run gets its own steps (`dl1-cs1-0003`,
//! `stereo-0003`, `dl2-cs1-0003`, …), so a new run adds steps and changes no existing step's
//! inputs, except the DL3 of its target and wobble and the indexes that list it. The raw
//! files are inputs read in place.
//!
//! * [`discover`] reads the headers of the night's raw files (the data centre's layout,
//!   `<raw>/cs{1,2}/data/raw/YYYY/MM/DD/SST1M{1,2}/SST1M{1,2}_YYYYMMDD_RRRR.fits.fz`): the
//!   `TARGET` card (name before the first `,` and `_`, as `daily_analysis` groups them; wobble;
//!   pointing), the first and last event times and trigger counts. A file that cannot be read
//!   as zfits is named, not fatal.
//! * [`production`] finds the production's nodes: the models, gammaness cuts and IRFs that a
//!   recipe run in this store made, linked by content (an IRF names the hashes of the models
//!   behind its DL2 and of its cut table).
//! * [`plan`] decides each run's fate (analysed at a node, skipped as sst1mpipe skips DARK,
//!   Transition, UNKNOWN, BIAS and WRtest runs, or not analysable and why) and writes the
//!   recipe.
//! * [`summary`] turns the engine's report and the DL3 into the night's summary (JSON and an
//!   HTML page with a θ² plot and the Li & Ma significance per target and setup) and the
//!   daily tree of links as sst1mpipe lays it out.
pub mod production;
pub mod summary;

use crate::astro::{self, Site};
use crate::error::{Error, Result};
use crate::io::zfits::ZFile;
use crate::raw_night::NightLayout;
use crate::stages::r0_sources::parse_target;
use production::{Production, Setup};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Target names sst1mpipe's daily analysis does not analyse.
pub const SKIPPED_TARGETS: &[&str] =
    &["DARK", "Transition", "UNKNOWN", "BIAS", "WRtest", "TRANSITION", "transition", "dark"];

/// Sources SST-1M observes, for the DL3 headers and the θ² plots: sst1mpipe resolves the
/// TARGET name with astropy's `SkyCoord.from_name` (a network lookup); a nightly job must not
/// depend on the network, so the positions are here (ICRS, deg) and `--target NAME=RA,DEC`
/// adds or overrides one.
pub const KNOWN_TARGETS: &[(&str, f64, f64)] = &[
    ("Crab", 83.6333, 22.0145),
    ("Mrk421", 166.1138, 38.2088),
    ("Mrk501", 253.4676, 39.7602),
    ("1ES1959+650", 299.9994, 65.1485),
    ("BLLac", 330.6804, 42.2778),
    ("1ES0229+200", 38.2026, 20.2882),
    ("PG1553+113", 238.9294, 11.1901),
    ("CygnusX-3", 308.1074, 40.9577),
];

/// One raw file of the night, as its headers describe it.
#[derive(Clone, Debug)]
pub struct RawRun {
    /// 1 or 2 (SST1M-1, SST1M-2); the camera's telescope id is 20 + this.
    pub tel: u8,
    pub run: u32,
    pub path: PathBuf,
    pub file_name: String,
    /// The `TARGET` card as written.
    pub target_card: String,
    /// The name `daily_analysis` groups by.
    pub target: String,
    pub wobble: String,
    /// The pointing (RA, Dec deg) from the card, when it has coordinates.
    pub pointing: Option<(f64, f64)>,
    /// First and last event (Unix s).
    pub start_unix_s: f64,
    pub stop_unix_s: f64,
    pub events: u64,
    pub pedestal_events: u64,
}

impl RawRun {
    pub fn tel_id(&self) -> u16 {
        20 + self.tel as u16
    }

    pub fn duration_s(&self) -> f64 {
        (self.stop_unix_s - self.start_unix_s).max(0.0)
    }
}

/// A file that is not a readable raw run, and why.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub tel: u8,
    pub path: PathBuf,
    pub error: String,
}

#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub runs: Vec<RawRun>,
    pub unreadable: Vec<Unreadable>,
}

/// `daily_analysis`'s grouping name: the TARGET card before the first `,` and `_`, spaces removed.
pub fn daily_target_name(card: &str) -> String {
    card.split(',').next().unwrap_or("").split('_').next().unwrap_or("").replace(' ', "")
}

/// Reads the headers of every raw file of the night of `date` under `root`.
pub fn discover(root: &Path, date: (i32, u32, u32)) -> Discovery {
    let layout = NightLayout { root: root.to_path_buf(), date };
    let ymd = format!("{:04}{:02}{:02}", date.0, date.1, date.2);
    let mut out = Discovery::default();
    for tel in 1..=2u8 {
        let dir = layout.raw_dir(tel as usize);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                name.starts_with(&format!("SST1M{tel}")) && name.ends_with(".fits.fz")
            })
            .collect();
        files.sort();
        for path in files {
            match read_run(&path, tel, &ymd) {
                Ok(run) => out.runs.push(run),
                Err(e) => out.unreadable.push(Unreadable { tel, path, error: e.to_string() }),
            }
        }
    }
    out
}

fn read_run(path: &Path, tel: u8, ymd: &str) -> Result<RawRun> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = file_name.trim_end_matches(".fits.fz");
    let run = stem
        .strip_prefix(&format!("SST1M{tel}_{ymd}_"))
        .and_then(|r| r.parse::<u32>().ok())
        .ok_or_else(|| Error::msg(format!("{}: not named SST1M{tel}_{ymd}_RRRR.fits.fz", path.display())))?;
    let file = ZFile::open(path)?;
    let events = file
        .tables
        .iter()
        .find(|t| t.name == "Events")
        .ok_or_else(|| Error::msg(format!("{}: no Events table (not SST-1M camera data)", path.display())))?;
    let h = &events.header;
    let target_card =
        h.string("TARGET").or_else(|| file.headers.iter().find_map(|x| x.string("TARGET"))).unwrap_or_default();
    let target = match daily_target_name(&target_card) {
        t if t.is_empty() => "UNKNOWN".to_string(),
        t => t,
    };
    let parsed = parse_target(&target_card);
    let time = |s: &str, ns: &str| -> Option<f64> { Some(h.number(s)? + h.number(ns).unwrap_or(0.0) * 1e-9) };
    let (start, stop) = match (time("TSTARTS", "TSTARTNS"), time("TSTOPS", "TSTOPNS")) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(Error::msg(format!("{}: the Events header has no TSTARTS/TSTOPS cards", path.display()))),
    };
    Ok(RawRun {
        tel,
        run,
        path: path.to_path_buf(),
        file_name,
        target,
        wobble: parsed.as_ref().map(|p| p.1.clone()).unwrap_or_else(|| "UNDEF".into()),
        pointing: parsed.map(|p| (p.2, p.3)),
        target_card,
        start_unix_s: start,
        stop_unix_s: stop,
        events: events.n_rows,
        pedestal_events: h.number("NTRIGINT").unwrap_or(0.0) as u64,
    })
}

/// The calibration table of telescope `tel` for the night: the most recent
/// `SST1M{tel}_calib_param_YYYYMMDD.h5` dated on or before the night in
/// `<raw>/cs{tel}/data/calibration/`.
pub fn calibration_table(root: &Path, tel: u8, date: (i32, u32, u32)) -> Option<PathBuf> {
    let dir = root.join(format!("cs{tel}/data/calibration"));
    let night = date.0 as u32 * 10_000 + date.1 * 100 + date.2;
    let prefix = format!("SST1M{tel}_calib_param_");
    std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().to_string();
            let d: u32 = name.strip_prefix(&prefix)?.strip_suffix(".h5")?.parse().ok()?;
            (d <= night).then_some((d, p))
        })
        .max()
        .map(|(_, p)| p)
}

/// What the nightly does with a run.
#[derive(Clone, Debug)]
pub enum Fate {
    /// Analysed with the models of this production node.
    Analysed { node: String, zenith_deg: f64, azimuth_deg: f64 },
    /// Not a science run (sst1mpipe skips it too): not an error.
    Skipped(String),
    /// A science run that cannot be analysed: data lost until it is fixed.
    NotAnalysable(String),
}

/// What the user asked for.
pub struct NightRequest<'a> {
    pub raw_root: &'a Path,
    pub date: (i32, u32, u32),
    pub config_path: &'a Path,
    pub config: &'a Value,
    pub subarray: &'a Path,
    pub window: Option<&'a Path>,
    pub max_zenith_offset_deg: f64,
    /// Extra or overriding target positions.
    pub targets: &'a BTreeMap<String, (f64, f64)>,
    /// Per telescope: its calibration table for the night ([`calibration_table`]).
    pub calibration: [Option<PathBuf>; 2],
    /// Per telescope: why its calibration table must not be used (it was invalidated).
    pub invalid_calibration: [Option<String>; 2],
}

/// A `dl1-distributions` step of the night: one telescope's tables of one observation.
pub struct DistributionStep {
    pub step: String,
    pub target: String,
    pub wobble: String,
    pub setup: String,
    /// The telescope whose DL1 it reads (1 or 2).
    pub tel: u8,
}

/// The planned night: the recipe and every run's fate.
pub struct NightPlan {
    pub recipe_name: String,
    pub recipe: Value,
    pub fates: Vec<(RawRun, Fate)>,
    pub unreadable: Vec<Unreadable>,
    /// Problems that are not about one run (a telescope without calibration table, a target
    /// without a known position, a setup the production lacks).
    pub notes: Vec<String>,
    /// DL3 steps: (step name, target, wobble, setup, efficiency cuts?).
    pub dl3_steps: Vec<Dl3Step>,
    pub distribution_steps: Vec<DistributionStep>,
    /// Per run and telescope: the step names of its DL1 and DL2 (and stereo).
    pub run_steps: BTreeMap<(u8, u32), RunSteps>,
    pub calibration: [Option<PathBuf>; 2],
}

#[derive(Clone, Debug)]
pub struct Dl3Step {
    pub step: String,
    pub target: String,
    pub wobble: String,
    /// `cs1`, `cs2` or `stereo`.
    pub setup: String,
    pub efficiency_cuts: bool,
    pub node: String,
    pub runs: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct RunSteps {
    pub dl1: Option<String>,
    pub dl2: Option<String>,
    /// For tel 1 runs: stereo DL1 and stereo DL2 steps.
    pub stereo: Option<String>,
    pub stereo_dl2: Option<String>,
}

pub fn known_target(name: &str, extra: &BTreeMap<String, (f64, f64)>) -> Option<(f64, f64)> {
    extra
        .get(name)
        .copied()
        .or_else(|| KNOWN_TARGETS.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name)).map(|&(_, ra, dec)| (ra, dec)))
}

/// A name usable in step names: letters, digits, `-`, `_`; anything else becomes `-`.
fn slug(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    t.trim_start_matches('-').to_string()
}

fn site_of(config: &Value, tel_id: u16) -> Result<Site> {
    crate::stages::simulate::site(config, tel_id)
}

/// Plans the night into a recipe.
pub fn plan(req: &NightRequest, discovery: &Discovery, production: &Production) -> Result<NightPlan> {
    let ymd = format!("{:04}{:02}{:02}", req.date.0, req.date.1, req.date.2);
    let recipe_name = format!("nightly-{ymd}");
    let mut notes = Vec::new();
    let calibration = req.calibration.clone();
    let mut fates = Vec::new();
    for run in &discovery.runs {
        let fate = if SKIPPED_TARGETS.contains(&run.target.as_str()) {
            Fate::Skipped(format!("{} run (not analysed, as sst1mpipe's daily analysis)", run.target))
        } else if run.events == 0 {
            Fate::NotAnalysable("no events".into())
        } else if calibration[run.tel as usize - 1].is_none() {
            Fate::NotAnalysable(format!(
                "no calibration table SST1M{}_calib_param_YYYYMMDD.h5 dated on or before {ymd} in {}",
                run.tel,
                req.raw_root.join(format!("cs{}/data/calibration", run.tel)).display()
            ))
        } else if let Some(why) = &req.invalid_calibration[run.tel as usize - 1] {
            Fate::NotAnalysable(format!(
                "its calibration table {} was invalidated ({why}): replace the table, then run nightly again",
                calibration[run.tel as usize - 1].as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            ))
        } else if let Some((ra, dec)) = run.pointing {
            let site = site_of(req.config, run.tel_id())?;
            let (alt, az) = astro::radec_to_altaz(ra, dec, site, 0.5 * (run.start_unix_s + run.stop_unix_s));
            let zenith = 90.0 - alt;
            match production.nearest_node(zenith, az) {
                Some(node) if (node.zenith_deg - zenith).abs() <= req.max_zenith_offset_deg => {
                    Fate::Analysed { node: node.name.clone(), zenith_deg: zenith, azimuth_deg: az }
                }
                Some(node) => Fate::NotAnalysable(format!(
                    "no production node within {}° of the run's zenith {zenith:.1}° (nearest: {} at zenith {:.1}°; production {})",
                    req.max_zenith_offset_deg, node.name, node.zenith_deg, production.name
                )),
                None => Fate::NotAnalysable(format!("production {} has no node", production.name)),
            }
        } else {
            Fate::NotAnalysable(format!(
                "TARGET card {:?} has no pointing coordinates (expected Name,Wobble,RA,Dec)",
                run.target_card
            ))
        };
        fates.push((run.clone(), fate));
    }

    let mut inputs = Map::new();
    let mut steps: Vec<Value> = Vec::new();
    inputs.insert("subarray".into(), json!({"paths": [req.subarray], "kind": "subarray"}));
    if let Some(w) = req.window {
        inputs.insert("window".into(), json!({"paths": [w], "kind": "window_transmittance"}));
    }
    // A telescope's calibration table is an input only when one of its runs is analysed (an
    // invalidated table must not even be registered).
    for (k, cal) in calibration.iter().enumerate() {
        let used = fates.iter().any(|(r, f)| r.tel as usize == k + 1 && matches!(f, Fate::Analysed { .. }));
        if let (Some(c), true) = (cal, used) {
            inputs.insert(format!("calibration-cs{}", k + 1), json!({"paths": [c], "kind": "calibration"}));
        }
    }
    // Production products used, as input sets read from the store (copy: they are objects).
    let mut used_products: BTreeMap<String, PathBuf> = BTreeMap::new();
    let product_set = |set: String, path: &Path, used: &mut BTreeMap<String, PathBuf>| -> String {
        used.entry(set.clone()).or_insert_with(|| path.to_path_buf());
        set
    };

    let mut run_steps: BTreeMap<(u8, u32), RunSteps> = BTreeMap::new();
    // DL1 and mono DL2.
    for (run, fate) in &fates {
        let Fate::Analysed { node, .. } = fate else { continue };
        let raw_set = format!("raw-cs{}-{:04}", run.tel, run.run);
        inputs.insert(raw_set.clone(), json!({"paths": [run.path], "kind": "r0"}));
        let dl1 = format!("dl1-cs{}-{:04}", run.tel, run.run);
        let mut step_inputs =
            json!({"r0": raw_set, "calibration": format!("calibration-cs{}", run.tel), "subarray": "subarray"});
        if req.window.is_some() {
            step_inputs["window_transmittance"] = json!("window");
        }
        steps.push(json!({"name": dl1, "stage": "r0-dl1", "params": {"tel_id": run.tel_id()}, "inputs": step_inputs}));
        let entry = run_steps.entry((run.tel, run.run)).or_default();
        entry.dl1 = Some(dl1.clone());
        let setup = Setup::Mono(run.tel as u16);
        match production.node(node).and_then(|n| n.setups.get(&setup)) {
            Some(p) => {
                let mut step_inputs = json!({"dl1": format!("{dl1}.dl1")});
                for (role, path) in p.models(run.tel as u16) {
                    let set = format!("prod-{}-{}-{}", slug(node), setup.slug(), role);
                    step_inputs[role] = json!(product_set(set, path, &mut used_products));
                }
                let dl2 = format!("dl2-cs{}-{:04}", run.tel, run.run);
                steps.push(json!({"name": dl2, "stage": "dl1-dl2", "inputs": step_inputs}));
                entry.dl2 = Some(dl2);
            }
            None => notes.push(format!(
                "production {} has no mono models for telescope {} at node {node}: no cs{} DL2 for run {}",
                production.name, run.tel, run.tel, run.run
            )),
        }
    }
    // Stereo: each tel 1 run with the tel 2 runs that overlap it in time.
    let analysed: Vec<&RawRun> =
        fates.iter().filter(|(_, f)| matches!(f, Fate::Analysed { .. })).map(|(r, _)| r).collect();
    for run1 in analysed.iter().filter(|r| r.tel == 1) {
        let partners: Vec<&&RawRun> = analysed
            .iter()
            .filter(|r| r.tel == 2 && r.start_unix_s < run1.stop_unix_s && r.stop_unix_s > run1.start_unix_s)
            .collect();
        if partners.is_empty() {
            notes.push(format!("run {} of SST1M-1 has no SST1M-2 run overlapping it in time: no stereo", run1.run));
            continue;
        }
        let node = fates
            .iter()
            .find_map(|(r, f)| match f {
                Fate::Analysed { node, .. } if r.tel == 1 && r.run == run1.run => Some(node.clone()),
                _ => None,
            })
            .expect("analysed");
        let Some(p) = production.node(&node).and_then(|n| n.setups.get(&Setup::Stereo)) else {
            notes.push(format!(
                "production {} has no stereo models at node {node}: no stereo for run {}",
                production.name, run1.run
            ));
            continue;
        };
        let stereo = format!("stereo-{:04}", run1.run);
        let tel2: Vec<String> = partners.iter().map(|r| format!("dl1-cs2-{:04}.dl1", r.run)).collect();
        steps.push(json!({"name": stereo, "stage": "dl1-stereo",
            "inputs": {"tel1": format!("dl1-cs1-{:04}.dl1", run1.run), "tel2": tel2}}));
        let mut dl2s = Vec::new();
        for tel in [1u16, 2] {
            let mut step_inputs = json!({"dl1": format!("{stereo}.dl1_tel{tel}")});
            for (role, path) in p.models(tel) {
                let set = format!("prod-{}-stereo-tel{tel}-{}", slug(&node), role);
                step_inputs[role] = json!(product_set(set, path, &mut used_products));
            }
            let name = format!("dl2-stereo-tel{tel}-{:04}", run1.run);
            steps.push(json!({"name": name, "stage": "dl1-dl2", "inputs": step_inputs}));
            dl2s.push(name);
        }
        let name = format!("dl2-stereo-{:04}", run1.run);
        steps.push(json!({"name": name, "stage": "dl2-stereo",
            "inputs": {"tel1": format!("{}.dl2", dl2s[0]), "tel2": format!("{}.dl2", dl2s[1])}}));
        let entry = run_steps.entry((1, run1.run)).or_default();
        entry.stereo = Some(stereo);
        entry.stereo_dl2 = Some(name);
    }
    // DL3: per target, wobble, node and setup, with the global cut and the efficiency cuts.
    let mut groups: BTreeMap<(String, String, String, String), Vec<u32>> = BTreeMap::new();
    for (run, fate) in &fates {
        let Fate::Analysed { node, .. } = fate else { continue };
        let steps_of = run_steps.get(&(run.tel, run.run)).cloned().unwrap_or_default();
        let setup = format!("cs{}", run.tel);
        if steps_of.dl2.is_some() {
            groups.entry((run.target.clone(), run.wobble.clone(), node.clone(), setup)).or_default().push(run.run);
        }
        if steps_of.stereo_dl2.is_some() {
            groups
                .entry((run.target.clone(), run.wobble.clone(), node.clone(), "stereo".into()))
                .or_default()
                .push(run.run);
        }
    }
    let mut dl3_steps = Vec::new();
    let mut distribution_steps = Vec::new();
    let mut unknown_targets = std::collections::BTreeSet::new();
    for ((target, wobble, node, setup), runs) in &groups {
        let prod_setup = match setup.as_str() {
            "cs1" => Setup::Mono(1),
            "cs2" => Setup::Mono(2),
            _ => Setup::Stereo,
        };
        let Some(p) = production.node(node).and_then(|n| n.setups.get(&prod_setup)) else { continue };
        let dl2: Vec<String> = runs
            .iter()
            .map(|r| match setup.as_str() {
                "cs1" => format!("dl2-cs1-{r:04}.dl2"),
                "cs2" => format!("dl2-cs2-{r:04}.dl2"),
                _ => format!("dl2-stereo-{r:04}.dl2"),
            })
            .collect();
        let mut params = json!({"target_name": target});
        match known_target(target, req.targets) {
            Some((ra, dec)) => {
                params["target_ra_deg"] = json!(ra);
                params["target_dec_deg"] = json!(dec);
            }
            None => {
                unknown_targets.insert(target.clone());
            }
        }
        let multi_node = groups.keys().filter(|(t, w, _, s)| t == target && w == wobble && s == setup).count() > 1;
        let base = if multi_node {
            format!("{}-{}-{}-{}", setup, slug(target), slug(wobble), slug(node))
        } else {
            format!("{}-{}-{}", setup, slug(target), slug(wobble))
        };
        for eff in [false, true] {
            let irf = if eff { &p.irf_efficiency } else { &p.irf_global };
            let Some(irf) = irf else {
                notes.push(format!(
                    "production {} has no {setup} IRF with {} at node {node}: no {} DL3 for {target} {wobble}",
                    production.name,
                    if eff { "efficiency cuts" } else { "the global cut" },
                    if eff { "dl3_eff" } else { "dl3" }
                ));
                continue;
            };
            let kind = if eff { "eff" } else { "global" };
            let mut step_inputs = json!({"dl2": dl2,
                "irfs": product_set(format!("prod-{}-{}-irf-{kind}", slug(node), prod_setup.slug()), irf, &mut used_products)});
            if eff {
                let Some(cuts) = &p.cuts else { continue };
                step_inputs["cuts"] = json!(product_set(
                    format!("prod-{}-{}-cuts", slug(node), prod_setup.slug()),
                    cuts,
                    &mut used_products
                ));
            }
            let step = format!("{}-{base}", if eff { "dl3eff" } else { "dl3" });
            steps.push(json!({"name": step, "stage": "dl2-dl3", "inputs": step_inputs, "params": params}));
            dl3_steps.push(Dl3Step {
                step,
                target: target.clone(),
                wobble: wobble.clone(),
                setup: setup.clone(),
                efficiency_cuts: eff,
                node: node.clone(),
                runs: runs.clone(),
            });
        }
    }
    // Data-quality distributions per observation (sst1mpipe's `distributions/`): the DL1 of
    // the group's runs, per telescope (stereo: both telescopes' stereo DL1).
    for ((target, wobble, node, setup), runs) in &groups {
        let multi_node = groups.keys().filter(|(t, w, _, s)| t == target && w == wobble && s == setup).count() > 1;
        let base = if multi_node {
            format!("{}-{}-{}", slug(target), slug(wobble), slug(node))
        } else {
            format!("{}-{}", slug(target), slug(wobble))
        };
        let sets: Vec<(String, u8, Vec<String>)> = match setup.as_str() {
            "cs1" | "cs2" => {
                let dl1 = runs.iter().map(|r| format!("dl1-{setup}-{r:04}.dl1")).collect();
                vec![(format!("dist-{setup}-{base}"), if setup == "cs1" { 1 } else { 2 }, dl1)]
            }
            _ => [1u8, 2]
                .iter()
                .map(|&t| {
                    (
                        format!("dist-stereo-tel{t}-{base}"),
                        t,
                        runs.iter().map(|r| format!("stereo-{r:04}.dl1_tel{t}")).collect(),
                    )
                })
                .collect(),
        };
        for (step, tel, dl1) in sets {
            steps.push(json!({"name": step, "stage": "dl1-distributions", "inputs": {"dl1": dl1}}));
            let (target, wobble, setup) = (target.clone(), wobble.clone(), setup.clone());
            distribution_steps.push(DistributionStep { step, target, wobble, setup, tel });
        }
    }
    for t in unknown_targets {
        notes.push(format!(
            "target {t:?} has no known position: its DL3 have no RA_OBJ/DEC_OBJ and no θ² plot (give --target {t}=RA,DEC)"
        ));
    }
    // The night's indexes: one data store per setup and cut.
    for setup in ["cs1", "cs2", "stereo"] {
        for eff in [false, true] {
            let dl3: Vec<String> = dl3_steps
                .iter()
                .filter(|d| d.setup == setup && d.efficiency_cuts == eff)
                .map(|d| format!("{}.dl3", d.step))
                .collect();
            if dl3.is_empty() {
                continue;
            }
            let name = format!("index-{setup}{}", if eff { "-eff" } else { "" });
            steps.push(json!({"name": name, "stage": "dl3-index", "inputs": {"dl3": dl3}}));
        }
    }
    for (set, path) in used_products {
        inputs.insert(set, json!({"paths": [path], "kind": "production", "copy": true}));
    }
    let recipe = json!({
        "name": recipe_name,
        "description": format!("the night of {ymd} from {} with production {}, planned by `sst1mflow nightly`", req.raw_root.display(), production.name),
        "config": req.config_path,
        "inputs": inputs,
        "steps": steps,
    });
    Ok(NightPlan {
        recipe_name,
        recipe,
        fates,
        unreadable: discovery.unreadable.clone(),
        notes,
        dl3_steps,
        distribution_steps,
        run_steps,
        calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_grouped_as_daily_analysis_groups_them() {
        assert_eq!(daily_target_name("Crab,W1,83.6333,22.4145"), "Crab");
        assert_eq!(daily_target_name("Crab_W1,83.9,22.0"), "Crab");
        assert_eq!(daily_target_name("1ES 1959+650,W2,300,65"), "1ES1959+650");
        assert_eq!(daily_target_name("DARK"), "DARK");
        assert_eq!(daily_target_name(""), "");
        assert_eq!(slug("1ES1959+650"), "1ES1959-650");
        assert_eq!(known_target("crab", &BTreeMap::new()), Some((83.6333, 22.0145)));
        let extra = BTreeMap::from([("Crab".to_string(), (1.0, 2.0))]);
        assert_eq!(known_target("Crab", &extra), Some((1.0, 2.0)));
        assert_eq!(known_target("Xyzq", &extra), None);
    }

    #[test]
    fn the_calibration_table_is_the_latest_dated_on_or_before_the_night() {
        let dir = std::env::temp_dir().join(format!("sst1mflow-nightly-cal-{}", std::process::id()));
        let cal = dir.join("cs2/data/calibration");
        std::fs::create_dir_all(&cal).unwrap();
        for d in ["20261101", "20261204", "20261206", "junk"] {
            std::fs::write(cal.join(format!("SST1M2_calib_param_{d}.h5")), b"x").unwrap();
        }
        std::fs::write(cal.join("SST1M1_calib_param_20261205.h5"), b"x").unwrap();
        assert_eq!(
            calibration_table(&dir, 2, (2026, 12, 5)).unwrap().file_name().unwrap(),
            "SST1M2_calib_param_20261204.h5"
        );
        assert_eq!(
            calibration_table(&dir, 2, (2026, 12, 6)).unwrap().file_name().unwrap(),
            "SST1M2_calib_param_20261206.h5"
        );
        assert!(calibration_table(&dir, 2, (2026, 10, 1)).is_none());
        assert!(calibration_table(&dir, 1, (2026, 12, 4)).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
