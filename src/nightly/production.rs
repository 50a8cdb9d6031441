//! A production: the models, gammaness cuts and IRFs the nightly analysis uses, at one or
//! more zenith/azimuth/NSB nodes, as a recipe run in this store made them.
//!
//! Nothing about a production is declared by hand: it is read from the products themselves.
//! Every IRF records its node (`ZEN_PNT`, `AZ_PNT`, `NSBRATE`, `IRFNODE`), its telescope setup
//! (`N_TELS`), its cut (`GH_CUT`, and `CUTTABLE`: the SHA-256 of its gh-cuts table) and the
//! SHA-256 of every RF model behind its DL2 (`RFMODELS`). Starting from the IRFs among the
//! recipe's current outputs (its views), the models and cut tables are found by hash among
//! the same outputs, so a node's models, cuts and IRFs belong together by construction: the
//! same contract `dl2-dl3` checks again when it runs. An IRF whose models or cut table are not
//! among the recipe's outputs is left out and said so.
use crate::error::{Error, Result};
use crate::io::fits;
use crate::io::gadf::CutIdentity;
use crate::store::Store;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which telescopes a set of models and IRFs is for: one telescope's mono analysis (the
/// Monte Carlo telescope id, 1 or 2, serving camera telescope 21 or 22) or the stereo one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Setup {
    Mono(u16),
    Stereo,
}

impl Setup {
    pub fn slug(&self) -> String {
        match self {
            Setup::Mono(t) => format!("tel{t}"),
            Setup::Stereo => "stereo".into(),
        }
    }
}

/// The model roles of `dl1-dl2`, in its order.
pub const MODEL_ROLES: [&str; 4] = ["energy", "disp_norm", "disp_sign", "gh"];

#[derive(Clone, Debug, Default)]
pub struct SetupProducts {
    /// Per Monte Carlo telescope: role → model file.
    pub models: BTreeMap<u16, BTreeMap<String, PathBuf>>,
    pub cuts: Option<PathBuf>,
    pub irf_global: Option<PathBuf>,
    pub irf_efficiency: Option<PathBuf>,
    /// The global cut of `irf_global`.
    pub global_cut: Option<f64>,
}

impl SetupProducts {
    /// The four models of telescope `tel`, by `dl1-dl2` role.
    pub fn models(&self, tel: u16) -> Vec<(&'static str, &Path)> {
        let Some(m) = self.models.get(&tel) else { return Vec::new() };
        MODEL_ROLES.iter().filter_map(|r| m.get(*r).map(|p| (*r, p.as_path()))).collect()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub zenith_deg: f64,
    pub azimuth_deg: f64,
    pub nsb_ghz: f64,
    pub setups: BTreeMap<Setup, SetupProducts>,
}

#[derive(Clone, Debug)]
pub struct Production {
    pub name: String,
    /// The pipeline version that made its IRFs (`S1MVER`); one per production.
    pub pipeline_version: String,
    pub nodes: Vec<Node>,
    /// IRFs left out, and why.
    pub notes: Vec<String>,
}

impl Production {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node nearest a pointing: by |cos zenith difference|, then azimuth (as `dl2-dl3`
    /// chooses IRFs).
    pub fn nearest_node(&self, zenith_deg: f64, azimuth_deg: f64) -> Option<&Node> {
        let distance = |n: &Node| {
            let dz = (zenith_deg.to_radians().cos() - n.zenith_deg.to_radians().cos()).abs();
            let d = (azimuth_deg - n.azimuth_deg).rem_euclid(360.0);
            ((dz * 1e6).round() as i64, (d.min(360.0 - d) * 1e3).round() as i64)
        };
        self.nodes.iter().min_by_key(|n| distance(n))
    }
}

/// A product among the recipe's outputs: its object path and the file name of its view.
struct Found {
    path: PathBuf,
    view: PathBuf,
}

/// The object a view shows: by the content hash its link ends with, in `store` itself, so that
/// a store moved or copied elsewhere uses its own objects (views are absolute links, and still
/// point into the store they were made in); else wherever the link leads (a folder, or a link
/// to no object of this store).
fn viewed_object(store: &Store, view: &Path) -> Option<PathBuf> {
    if let Ok(target) = std::fs::read_link(view) {
        // A name that is not a content hash gives a path that never exists.
        let own = store.object_path(target.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        if own.is_file() {
            return Some(own);
        }
    }
    std::fs::canonicalize(view).ok()
}

/// Reads the production `name` from the views of the recipe of that name in `store`.
pub fn discover(store: &Store, name: &str) -> Result<Production> {
    let root = store.views_dir().join(name);
    if !root.is_dir() {
        return Err(Error::msg(format!(
            "production {name}: no recipe of that name has been run in this store ({} does not exist); run it first: sst1mflow run <its recipe file>",
            root.display()
        )));
    }
    // hash → product, per kind of file.
    let mut models: BTreeMap<String, Found> = BTreeMap::new();
    let mut cuts: BTreeMap<String, Found> = BTreeMap::new();
    let mut irfs: Vec<Found> = Vec::new();
    let mut walk = vec![root.clone()];
    while let Some(dir) = walk.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        for e in entries.flatten() {
            let view = e.path();
            let Some(object) = viewed_object(store, &view) else { continue };
            if object.is_dir() {
                walk.push(view);
                continue;
            }
            let file = view.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let hash = object.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let found = Found { path: object, view };
            if file.ends_with(".rf") {
                models.insert(hash, found);
            } else if file == "gh_cuts.h5" {
                cuts.insert(hash, found);
            } else if file == "irfs.fits" {
                irfs.push(found);
            }
        }
    }
    irfs.sort_by(|a, b| a.view.cmp(&b.view));
    let mut nodes: Vec<Node> = Vec::new();
    let mut notes = Vec::new();
    let mut pipeline_version: Option<String> = None;
    for irf in &irfs {
        let what = format!("production {name}: IRF {}", irf.view.display());
        let hdus = fits::read_file(&irf.path, &what)?;
        let h = hdus
            .iter()
            .find(|h| h.extname() == "EFFECTIVE AREA")
            .ok_or_else(|| Error::msg(format!("{what}: no EFFECTIVE AREA HDU")))?;
        let number = |k: &str| h.number(k).ok_or_else(|| Error::msg(format!("{what}: no {k} card")));
        let node_name = h.string("IRFNODE").ok_or_else(|| Error::msg(format!("{what}: no IRFNODE card")))?;
        let (zenith, azimuth, nsb) = (number("ZEN_PNT")?, number("AZ_PNT")?, number("NSBRATE")?);
        let stereo = h.number("N_TELS").unwrap_or(1.0) >= 2.0;
        let version = h.string("S1MVER").ok_or_else(|| Error::msg(format!("{what}: no S1MVER card")))?;
        match &pipeline_version {
            None => pipeline_version = Some(version),
            Some(v) if *v != version => {
                return Err(Error::msg(format!(
                "production {name}: its IRFs were made by two pipeline versions ({v} and {version}); rerun its recipe"
            )))
            }
            Some(_) => {}
        }
        let rf: Value = crate::io::gadf::json_card(h, "RFMODELS", &what)?;
        // (MC telescope, role) → hash.
        let mut wanted: Vec<(Option<u16>, String, String)> = Vec::new();
        if let Some(m) = rf.as_object() {
            for (k, v) in m {
                if let Some(tel) = k.strip_prefix("tel_").and_then(|t| t.parse::<u16>().ok()) {
                    for (role, w) in v.as_object().into_iter().flatten() {
                        if let Some(h) = w.get("sha256").and_then(Value::as_str) {
                            wanted.push((Some(tel), role.clone(), h.to_string()));
                        }
                    }
                } else if let Some(h) = v.get("sha256").and_then(Value::as_str) {
                    wanted.push((None, k.clone(), h.to_string()));
                }
            }
        }
        let mut by_tel: BTreeMap<u16, BTreeMap<String, PathBuf>> = BTreeMap::new();
        let mut missing = Vec::new();
        for (tel, role, hash) in &wanted {
            let Some(found) = models.get(hash) else {
                missing.push(format!("{role} model {}", &hash[..hash.len().min(12)]));
                continue;
            };
            let tel = match tel {
                Some(t) => *t,
                None => crate::io::model::read(&found.path, &found.view.display().to_string())?.header.tel_id,
            };
            by_tel.entry(tel).or_default().insert(role.clone(), found.path.clone());
        }
        if !missing.is_empty() || wanted.is_empty() {
            notes.push(format!(
                "{what} left out: its models are not among the production's outputs ({})",
                if missing.is_empty() { "it names none".to_string() } else { missing.join(", ") }
            ));
            continue;
        }
        let setup = if stereo {
            Setup::Stereo
        } else {
            match by_tel.keys().copied().collect::<Vec<_>>().as_slice() {
                [t] => Setup::Mono(*t),
                other => {
                    notes.push(format!("{what} left out: a mono IRF whose models are of telescopes {other:?}"));
                    continue;
                }
            }
        };
        let node = match nodes.iter_mut().position(|n| n.name == node_name) {
            Some(i) => &mut nodes[i],
            None => {
                nodes.push(Node {
                    name: node_name.clone(),
                    zenith_deg: zenith,
                    azimuth_deg: azimuth,
                    nsb_ghz: nsb,
                    setups: BTreeMap::new(),
                });
                nodes.last_mut().expect("pushed")
            }
        };
        let entry = node.setups.entry(setup).or_default();
        if !entry.models.is_empty() && entry.models != by_tel {
            return Err(Error::msg(format!(
                "production {name}: node {node_name} has IRFs of two different sets of {} models (one is {}): keep one set per node and setup",
                setup.slug(),
                irf.view.display()
            )));
        }
        entry.models = by_tel;
        match CutIdentity::from_header(h) {
            Some(CutIdentity::Global(c)) => {
                entry.irf_global = Some(irf.path.clone());
                entry.global_cut = Some(c);
            }
            Some(CutIdentity::Table { sha256 }) => match cuts.get(&sha256) {
                Some(found) => {
                    entry.irf_efficiency = Some(irf.path.clone());
                    entry.cuts = Some(found.path.clone());
                }
                None => notes.push(format!(
                    "{what} left out: its gammaness cut table {} is not among the production's outputs",
                    &sha256[..sha256.len().min(12)]
                )),
            },
            None => notes.push(format!("{what} left out: no GH_CUT card")),
        }
    }
    if nodes.is_empty() {
        return Err(Error::msg(format!(
            "production {name}: no usable IRF among its outputs ({}): a production needs make-irfs steps{}",
            root.display(),
            if notes.is_empty() { String::new() } else { format!("; {}", notes.join("; ")) }
        )));
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Production { name: name.to_string(), pipeline_version: pipeline_version.unwrap_or_default(), nodes, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store moved elsewhere finds its production's objects in itself, though its views
    /// still point into the old place; links to no object of the store are followed.
    #[test]
    fn views_of_a_moved_store_resolve_in_the_store() {
        let root = std::env::temp_dir().join(format!("sst1mflow-viewed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root.join("moved")).unwrap();
        let hash = "ab".repeat(32);
        let object = store.object_path(&hash);
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(&object, b"irf").unwrap();
        let views = store.views_dir();
        let gone = root.join("old/objects/ab").join(&hash);
        std::os::unix::fs::symlink(&gone, views.join("irfs.fits")).unwrap();
        assert_eq!(viewed_object(&store, &views.join("irfs.fits")), Some(object.clone()));
        let elsewhere = root.join("elsewhere.fits");
        std::fs::write(&elsewhere, b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, views.join("other.fits")).unwrap();
        assert_eq!(viewed_object(&store, &views.join("other.fits")), Some(elsewhere.canonicalize().unwrap()));
        std::os::unix::fs::symlink(root.join("old/missing"), views.join("dangling.fits")).unwrap();
        assert_eq!(viewed_object(&store, &views.join("dangling.fits")), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    fn node(name: &str, zenith_deg: f64, azimuth_deg: f64) -> Node {
        Node { name: name.into(), zenith_deg, azimuth_deg, nsb_ghz: 0.1, setups: BTreeMap::new() }
    }

    #[test]
    fn a_run_gets_the_node_nearest_its_zenith_then_azimuth() {
        let p = Production {
            name: "p".into(),
            pipeline_version: String::new(),
            nodes: vec![node("ze20_az180", 20.0, 180.0), node("ze40_az180", 40.0, 180.0), node("ze40_az0", 40.0, 0.0)],
            notes: Vec::new(),
        };
        assert_eq!(p.nearest_node(31.0, 170.0).unwrap().name, "ze20_az180");
        // In cos(zenith) the midpoint of 20° and 40° is 31.5°.
        assert_eq!(p.nearest_node(32.0, 170.0).unwrap().name, "ze40_az180");
        assert_eq!(p.nearest_node(41.0, 350.0).unwrap().name, "ze40_az0");
        assert_eq!(p.nearest_node(41.0, 200.0).unwrap().name, "ze40_az180");
        assert!(Production { nodes: Vec::new(), ..p }.nearest_node(30.0, 0.0).is_none());
    }
}
