//! `sst1mflow r0-dl1 FILE…`: R0 (or R1) → DL1 without writing a recipe.
//!
//! The command writes the recipe a user would have written (one `r0-dl1` activity per file,
//! the calibration table, window and telescope description as inputs) into the store's `standalone/` folder and runs
//! it through the engine, so a DL1 made this way has the same provenance, reuse and refusal
//! rules as one made by a recipe. The DL1 files are then copied out as `<name>.dl1.h5`.
use super::Cli;
use crate::engine::run::{run_recipe, want_progress, Outcome, RunOptions};
use crate::error::{Error, Result};
use crate::stages::r0_sources::{detect, Format};
use crate::store::Store;
use clap::Args;
use serde_json::json;
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct R0Dl1Args {
    /// Input files: SST-1M zfits (.fits.fz), sim_telarray (.simtel.gz/.zst) or sst1mflow R1 (.h5)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// sst1mpipe configuration (default: the shipped data config for zfits, MC config otherwise)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Telescope (default: the one in the first file)
    #[arg(long)]
    pub tel_id: Option<u16>,
    /// Observation id, for camera data whose file name has no YYYYMMDD_RRRR (one file only)
    #[arg(long)]
    pub obs_id: Option<i64>,
    /// Pointing RA in degrees (camera data; used only with --force-pointing, as sst1mpipe)
    #[arg(long, short = 'r', allow_negative_numbers = true)]
    pub pointing_ra: Option<f64>,
    /// Pointing Dec in degrees (camera data; used only with --force-pointing, as sst1mpipe)
    #[arg(long, short = 'd', allow_negative_numbers = true)]
    pub pointing_dec: Option<f64>,
    /// Use --pointing-ra/--pointing-dec even where the file's TARGET header has coordinates
    #[arg(long)]
    pub force_pointing: bool,
    /// Also write sst1mpipe's pixel-charge distributions (pedestal events of camera data, noise
    /// pixels of sim_telarray files) as `<name>_pedestal_hist.h5`
    #[arg(long)]
    pub px_charges: bool,
    /// Deflate the DL1 image table (about a fifth smaller; stored uncompressed by default, as
    /// deflate costs more time than the rest of the event's processing)
    #[arg(long)]
    pub compress_images: bool,
    /// Second pass (sst1mpipe's --reclean, camera data, one file): clean each event with the
    /// pedestal charge maps of this `_pedestal_hist.h5`, written by a --px-charges pass over the
    /// same run; outputs are named `<name>_recleaned…`
    #[arg(long, value_name = "PEDESTAL_HIST")]
    pub reclean: Option<PathBuf>,
    /// Per-pixel calibration table (camera data): pandas HDF5 or a text table with dc_to_pe and calib_flag
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Window transmittance file (camera data)
    #[arg(long)]
    pub window: Option<PathBuf>,
    /// Telescope description (camera data): sst1mpipe's sst1m_array.h5 or another ctapipe
    /// SubarrayDescription HDF5 file (reference pulse, pixel positions, optics)
    #[arg(long)]
    pub subarray: Option<PathBuf>,
    /// Where to copy the DL1 files
    #[arg(long, short, default_value = ".")]
    pub output: PathBuf,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))
}

/// The telescope of a file, read from its content.
fn telescope_of(path: &Path, format: Format) -> Result<u16> {
    let name = path.display().to_string();
    match format {
        Format::Zfits => {
            let mut r = crate::io::zfits::DigicamReader::open(path)?;
            let e = r.next_event()?.ok_or_else(|| Error::msg(format!("{name}: no events")))?;
            u16::try_from(e.telescope_id).map_err(|_| Error::msg(format!("{name}: telescope id {}", e.telescope_id)))
        }
        Format::Simtel => {
            let mut r = crate::io::simtel::SimtelReader::open(path)?;
            r.read_headers()?;
            let ids = r.run_header.map(|h| h.tel_ids).unwrap_or_default();
            match ids.as_slice() {
                [one] => Ok(*one as u16),
                _ => Err(Error::msg(format!("{name} holds telescopes {ids:?}: choose one with --tel-id"))),
            }
        }
        Format::R1 => crate::io::r1::read_tel_id(path),
    }
}

/// `run.fits.fz` → `run`; `x.simtel.gz` → `x`; `a.h5` → `a`.
fn stem(name: &str) -> &str {
    for suffix in [".fits.fz", ".simtel.gz", ".simtel.zst", ".simtel", ".h5", ".fits"] {
        if let Some(s) = name.strip_suffix(suffix) {
            return s;
        }
    }
    name
}

pub fn run(cli: &Cli, args: &R0Dl1Args) -> Result<i32> {
    let files: Vec<PathBuf> = args.files.iter().map(|f| absolute(f)).collect::<Result<_>>()?;
    let formats: Vec<Format> = files.iter().map(|f| detect(f, &f.display().to_string())).collect::<Result<_>>()?;
    if args.obs_id.is_some() && files.len() > 1 {
        return Err(Error::msg("--obs-id names one observation: give one file"));
    }
    if args.reclean.is_some() && files.len() > 1 {
        return Err(Error::msg("--reclean takes the charge maps of one run: give one file"));
    }
    let camera_data = formats.contains(&Format::Zfits);
    if camera_data && args.calibration.is_none() {
        return Err(Error::msg(
            "SST-1M camera data (zfits) need their per-pixel calibration table: --calibration FILE",
        ));
    }
    if camera_data && args.subarray.is_none() {
        return Err(Error::msg(
            "SST-1M camera data (zfits) need the telescope description: --subarray FILE (sst1mpipe's sst1m_array.h5, in sst1mpipe/data/)",
        ));
    }
    if !camera_data && (args.calibration.is_some() || args.window.is_some() || args.subarray.is_some()) {
        return Err(Error::msg("--calibration, --window and --subarray are for SST-1M camera data (zfits) only"));
    }
    let tel_id = match args.tel_id {
        Some(t) => t,
        None => telescope_of(&files[0], formats[0])?,
    };
    let store = Store::open(&cli.store_dir())?;
    let dir = store.root().join("standalone");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let config = match &args.config {
        Some(c) => absolute(c)?,
        None => {
            let (name, text) = if camera_data {
                ("sst1mpipe_data_config.json", crate::config::DATA_DEFAULTS)
            } else {
                ("sst1mpipe_mc_config.json", crate::config::MC_DEFAULTS)
            };
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
            p
        }
    };
    let mut inputs = serde_json::Map::new();
    inputs.insert("files".into(), json!({"paths": files, "kind": if camera_data { "r0" } else { "mc" }}));
    let mut step_inputs = serde_json::Map::new();
    step_inputs.insert("r0".into(), json!("files"));
    if let Some(c) = &args.calibration {
        inputs.insert("calibration".into(), json!({"paths": [absolute(c)?], "kind": "calibration"}));
        step_inputs.insert("calibration".into(), json!("calibration"));
    }
    if let Some(d) = &args.subarray {
        inputs.insert("subarray".into(), json!({"paths": [absolute(d)?], "kind": "subarray"}));
        step_inputs.insert("subarray".into(), json!("subarray"));
    }
    if let Some(w) = &args.window {
        inputs.insert("window".into(), json!({"paths": [absolute(w)?], "kind": "window_transmittance"}));
        step_inputs.insert("window_transmittance".into(), json!("window"));
    }
    let mut params = json!({"tel_id": tel_id});
    if let Some(o) = args.obs_id {
        params["obs_id"] = json!(o);
    }
    // Passed as given: the stage refuses coordinates without --force-pointing, and the reverse.
    if let Some(ra) = args.pointing_ra {
        params["pointing_ra_deg"] = json!(ra);
    }
    if let Some(dec) = args.pointing_dec {
        params["pointing_dec_deg"] = json!(dec);
    }
    if args.force_pointing {
        params["force_pointing"] = json!(true);
    }
    if args.compress_images {
        params["compress_images"] = json!(true);
    }
    if args.px_charges {
        params["px_charges"] = json!(true);
    }
    if let Some(maps) = &args.reclean {
        params["reclean"] = json!(true);
        inputs.insert("px_charges".into(), json!({"paths": [absolute(maps)?], "kind": "px-charges"}));
        step_inputs.insert("px_charges".into(), json!("px_charges"));
    }
    // sst1mpipe's names of a second pass.
    let suffix = if args.reclean.is_some() { "_recleaned" } else { "" };
    let body = json!({
        "config": config,
        "inputs": inputs,
        "steps": [{"name": "dl1", "stage": "r0-dl1", "inputs": step_inputs, "foreach": "r0", "params": params}],
    });
    let digest = sha2::Sha256::digest(serde_json::to_vec(&body).expect("json"));
    let name = format!("r0-dl1-{}", &digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..10]);
    let mut recipe = body;
    recipe["name"] = json!(name);
    recipe["description"] = json!("written by `sst1mflow r0-dl1`");
    let recipe_path = dir.join(format!("{name}.json"));
    std::fs::write(&recipe_path, serde_json::to_string_pretty(&recipe).expect("json"))
        .map_err(|e| Error::io(format!("cannot write {}", recipe_path.display()), e))?;
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let opts = RunOptions { jobs, dry_run: false, progress: want_progress(cli.quiet) && !cli.json, slurm: None };
    let report = run_recipe(&crate::stages::pipeline(), &store, &recipe_path, &opts)?;
    std::fs::create_dir_all(&args.output)
        .map_err(|e| Error::io(format!("cannot create {}", args.output.display()), e))?;
    let mut results = Vec::new();
    for a in &report.activities {
        let out = args.output.join(format!("{}{suffix}.dl1.h5", stem(&a.item)));
        match &a.outcome {
            Outcome::Ran | Outcome::Reused => {
                let src = store.views_dir().join(&name).join("dl1").join(&a.item).join("dl1.h5");
                std::fs::copy(&src, &out)
                    .map_err(|e| Error::io(format!("cannot copy {} to {}", src.display(), out.display()), e))?;
                if args.px_charges {
                    let src = store.views_dir().join(&name).join("dl1").join(&a.item).join("pedestal_hist.h5");
                    let to = args.output.join(format!("{}{suffix}_pedestal_hist.h5", stem(&a.item)));
                    std::fs::copy(&src, &to)
                        .map_err(|e| Error::io(format!("cannot copy {} to {}", src.display(), to.display()), e))?;
                }
                results.push(json!({"input": a.item, "dl1": out, "outcome": if a.outcome == Outcome::Ran { "ran" } else { "reused" }, "key": a.key}));
                if !cli.json {
                    let how = if a.outcome == Outcome::Ran { "made" } else { "reused" };
                    println!("{} -> {} ({how})", a.item, out.display());
                }
            }
            Outcome::Failed(e) => {
                results.push(json!({"input": a.item, "error": e}));
                if !cli.json {
                    println!("FAILED  {}: {e}", a.item);
                }
            }
            other => {
                results.push(json!({"input": a.item, "error": format!("{other:?}")}));
            }
        }
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"recipe": recipe_path, "tel_id": tel_id, "results": results}))
                .expect("json")
        );
    } else {
        println!("recipe written to {} (rerun it with `sst1mflow run`)", recipe_path.display());
    }
    Ok(if report.success() { 0 } else { 1 })
}
