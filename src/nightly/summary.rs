//! The night's summary and its daily tree: what a shifter reads in the morning.
//!
//! The summary is computed from the plan (runs, fates, steps), the engine's report (what
//! ran, was reused or failed, with the error), the activities' logs (the NSB level r0-dl1
//! measured) and the DL3 made with the global cut (θ² to the target and to three reflected
//! positions at the same offset from the pointing, α = 1/3; Li & Ma eq. 17). It is written as
//! JSON (for scripts) and as one self-contained HTML page (tables and inline SVG θ² plots; no
//! scripts, no external resources), beside a tree of links laid out as sst1mpipe's daily
//! analysis lays out its products: `<date>/<target>/{cs1,cs2,stereo}/{dl1,dl2,dl3,dl3_eff}`,
//! each product with its activity's log, the config at the top.
use super::{Fate, NightPlan};
use crate::astro;
use crate::engine::run::{Outcome, RunReport};
use crate::error::{Error, Result};
use crate::io::fits;
use crate::plot::{Axis, Figure, Scale, Series};
use crate::provenance::Db;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// θ² histogram range and binning (deg²).
const THETA2_MAX: f64 = 0.5;
const THETA2_BINS: usize = 25;

/// The events of one DL3 file, as the summary needs them.
struct Dl3Events {
    ra: Vec<f64>,
    dec: Vec<f64>,
    pointing: (f64, f64),
    livetime_s: f64,
}

fn read_dl3(path: &Path) -> Result<Dl3Events> {
    let what = path.display().to_string();
    let hdus = fits::read_file(path, &what)?;
    let events =
        hdus.iter().find(|h| h.extname() == "EVENTS").ok_or_else(|| Error::msg(format!("{what}: no EVENTS HDU")))?;
    let number = |k: &str| events.number(k).ok_or_else(|| Error::msg(format!("{what}: EVENTS has no {k}")));
    Ok(Dl3Events {
        ra: events.column_f64("RA", &what)?,
        dec: events.column_f64("DEC", &what)?,
        pointing: (number("RA_PNT")?, number("DEC_PNT")?),
        livetime_s: number("LIVETIME")?,
    })
}

/// ON/OFF counts of one target and setup over the night.
#[derive(Default, Clone)]
pub struct Theta2 {
    pub on: Vec<f64>,
    pub off: Vec<f64>,
    pub livetime_s: f64,
    pub n_on: f64,
    pub n_off: f64,
}

impl Theta2 {
    fn add(&mut self, ev: &Dl3Events, source: (f64, f64), cut: f64) {
        if self.on.is_empty() {
            self.on = vec![0.0; THETA2_BINS];
            self.off = vec![0.0; THETA2_BINS];
        }
        self.livetime_s += ev.livetime_s;
        let (pra, pdec) = ev.pointing;
        let offset = astro::angular_separation_deg(pra, pdec, source.0, source.1);
        let angle = astro::position_angle_deg(pra, pdec, source.0, source.1);
        let offs: Vec<(f64, f64)> = [90.0, 180.0, 270.0]
            .iter()
            .map(|d| crate::stages::simulate::offset_position(pra, pdec, offset, angle + d))
            .collect();
        let bin = |t2: f64| (t2 < THETA2_MAX).then(|| ((t2 / THETA2_MAX) * THETA2_BINS as f64) as usize);
        for (&ra, &dec) in ev.ra.iter().zip(&ev.dec) {
            let t2 = astro::angular_separation_deg(ra, dec, source.0, source.1).powi(2);
            if let Some(b) = bin(t2) {
                self.on[b.min(THETA2_BINS - 1)] += 1.0;
            }
            if t2 < cut {
                self.n_on += 1.0;
            }
            for o in &offs {
                let t2 = astro::angular_separation_deg(ra, dec, o.0, o.1).powi(2);
                if let Some(b) = bin(t2) {
                    self.off[b.min(THETA2_BINS - 1)] += 1.0;
                }
                if t2 < cut {
                    self.n_off += 1.0;
                }
            }
        }
    }
}

pub const ALPHA: f64 = 1.0 / 3.0;

/// θ² counts per (target, setup).
pub type Theta2ByTarget = BTreeMap<(String, String), Theta2>;

/// The NSB level r0-dl1 logged ("NSB level X p.e."), if any.
fn nsb_level(log: &str) -> Option<f64> {
    let at = log.find("NSB level ")?;
    log[at + 10..].split_whitespace().next()?.parse().ok()
}

pub struct SummaryInputs<'a> {
    pub plan: &'a NightPlan,
    pub report: Option<&'a RunReport>,
    pub db: Option<&'a Db>,
    pub views: &'a Path,
    pub date: String,
    pub production: &'a super::production::Production,
    pub targets: &'a BTreeMap<String, (f64, f64)>,
    pub theta2_cut: f64,
}

/// The outcome of each step of the report: (outcome word, error, activity key).
fn outcomes(report: Option<&RunReport>) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    let mut out = BTreeMap::new();
    for a in report.map(|r| r.activities.as_slice()).unwrap_or(&[]) {
        let (word, err) = match &a.outcome {
            Outcome::Ran => ("ran", None),
            Outcome::Reused => ("reused", None),
            Outcome::Failed(e) => ("failed", Some(e.clone())),
            Outcome::Skipped(e) => ("skipped", Some(e.clone())),
            _ => ("planned", None),
        };
        out.insert(a.step.clone(), (word.to_string(), err, a.key.clone()));
    }
    out
}

fn log_of(db: Option<&Db>, key: Option<&String>) -> Option<String> {
    let (db, key) = (db?, key?);
    db.activity_by_key(key).ok().flatten().map(|a| a.log)
}

/// The summary as JSON, and the θ² histograms per (target, setup).
pub fn summarise(s: &SummaryInputs) -> Result<(Value, Theta2ByTarget)> {
    let steps = outcomes(s.report);
    let step_json = |name: &Option<String>| -> Value {
        match name {
            None => Value::Null,
            Some(n) => {
                let (word, err, key) = steps.get(n).cloned().unwrap_or(("not run".into(), None, None));
                json!({"step": n, "outcome": word, "error": err, "key": key})
            }
        }
    };
    let mut runs = Vec::new();
    for (run, fate) in &s.plan.fates {
        let st = s.plan.run_steps.get(&(run.tel, run.run)).cloned().unwrap_or_default();
        let dl1_log = st.dl1.as_ref().and_then(|n| log_of(s.db, steps.get(n).and_then(|x| x.2.as_ref())));
        let (status, reason, node, zenith, azimuth) = match fate {
            Fate::Analysed { node, zenith_deg, azimuth_deg } => {
                ("analysed", None, Some(node.clone()), Some(*zenith_deg), Some(*azimuth_deg))
            }
            Fate::Skipped(why) => ("skipped", Some(why.clone()), None, None, None),
            Fate::NotAnalysable(why) => ("not analysed", Some(why.clone()), None, None, None),
        };
        let duration = run.duration_s();
        runs.push(json!({
            "telescope": run.tel_id(), "cs": format!("cs{}", run.tel), "run": run.run, "file": run.path,
            "target": run.target, "target_card": run.target_card, "wobble": run.wobble,
            "start_unix_s": run.start_unix_s, "duration_s": duration, "events": run.events,
            "pedestal_events": run.pedestal_events,
            "rate_hz": if duration > 0.0 { (run.events - run.pedestal_events) as f64 / duration } else { 0.0 },
            "status": status, "reason": reason, "node": node, "zenith_deg": zenith, "azimuth_deg": azimuth,
            "nsb_level_pe": dl1_log.as_deref().and_then(nsb_level),
            "dl1": step_json(&st.dl1), "dl2": step_json(&st.dl2),
            "stereo_dl1": step_json(&st.stereo), "stereo_dl2": step_json(&st.stereo_dl2),
        }));
    }
    // θ² per target and setup, from the DL3 with the global cut.
    let mut theta2 = Theta2ByTarget::new();
    let mut dl3 = Vec::new();
    for d in &s.plan.dl3_steps {
        let (word, err, key) = steps.get(&d.step).cloned().unwrap_or(("not run".into(), None, None));
        dl3.push(json!({"step": d.step, "target": d.target, "wobble": d.wobble, "setup": d.setup,
            "cuts": if d.efficiency_cuts { "efficiency" } else { "global" }, "node": d.node, "runs": d.runs,
            "outcome": word, "error": err, "key": key}));
        if d.efficiency_cuts || !(word == "ran" || word == "reused") {
            continue;
        }
        let Some(source) = super::known_target(&d.target, s.targets) else { continue };
        let path = s.views.join(&d.step).join("all").join("dl3.fits");
        let events = read_dl3(&path)?;
        theta2.entry((d.target.clone(), d.setup.clone())).or_default().add(&events, source, s.theta2_cut);
    }
    let mut targets = Vec::new();
    for ((target, setup), t) in &theta2 {
        let significance = crate::irf::li_ma_significance(t.n_on, t.n_off, ALPHA);
        targets.push(json!({
            "target": target, "setup": setup, "livetime_s": t.livetime_s, "theta2_cut_deg2": s.theta2_cut,
            "n_on": t.n_on, "n_off": t.n_off, "alpha": ALPHA, "excess": t.n_on - ALPHA * t.n_off,
            "significance": significance,
        }));
    }
    let failed: Vec<Value> = s
        .report
        .map(|r| r.activities.as_slice())
        .unwrap_or(&[])
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Failed(e) => Some(json!({"step": a.step, "error": e, "key": a.key})),
            _ => None,
        })
        .collect();
    let production: Vec<Value> = s
        .production
        .nodes
        .iter()
        .map(|n| {
            let setups: Vec<Value> = n
                .setups
                .iter()
                .map(|(setup, p)| {
                    let name = |p: &Option<PathBuf>| p.as_ref().and_then(|p| p.file_name()).map(|f| f.to_string_lossy().to_string());
                    let models: BTreeMap<String, BTreeMap<String, String>> = p
                        .models
                        .iter()
                        .map(|(tel, m)| {
                            (format!("tel_{tel:03}"), m.iter().map(|(r, p)| (r.clone(), name(&Some(p.clone())).unwrap_or_default())).collect())
                        })
                        .collect();
                    json!({"setup": setup.slug(), "models": models, "cuts": name(&p.cuts),
                        "irf_global": name(&p.irf_global), "irf_efficiency": name(&p.irf_efficiency), "global_cut": p.global_cut})
                })
                .collect();
            json!({"node": n.name, "zenith_deg": n.zenith_deg, "azimuth_deg": n.azimuth_deg, "nsb_ghz": n.nsb_ghz, "setups": setups})
        })
        .collect();
    // Where this invocation's time went: the activities that ran, by stage.
    let mut stage_seconds: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for a in s.report.map(|r| r.activities.as_slice()).unwrap_or(&[]) {
        if a.outcome != Outcome::Ran {
            continue;
        }
        let Some(stored) = s.db.zip(a.key.as_ref()).and_then(|(db, k)| db.activity_by_key(k).ok().flatten()) else {
            continue;
        };
        if let (Some(t0), Some(t1)) = (rfc3339_unix(&stored.started_at), rfc3339_unix(&stored.ended_at)) {
            let e = stage_seconds.entry(stored.stage.clone()).or_default();
            e.0 += 1;
            e.1 += t1 - t0;
        }
    }
    let stage_seconds: BTreeMap<String, Value> = stage_seconds
        .into_iter()
        .map(|(stage, (n, secs))| (stage, json!({"activities": n, "seconds": secs})))
        .collect();
    let unreadable: Vec<Value> = s
        .plan
        .unreadable
        .iter()
        .map(|u| json!({"cs": format!("cs{}", u.tel), "file": u.path, "error": u.error}))
        .collect();
    let summary = json!({
        "date": s.date, "recipe": s.plan.recipe_name, "production": s.production.name,
        "calibration_tables": s.plan.calibration,
        "runs": runs, "unreadable_files": unreadable, "notes": s.plan.notes, "production_notes": s.production.notes,
        "dl3": dl3, "targets": targets, "failed_activities": failed, "production_nodes": production,
        "stage_seconds": stage_seconds,
    });
    Ok((summary, theta2))
}

/// Unix seconds of an RFC 3339 UTC time as the provenance database records them
/// (`2026-12-06T16:03:45.123Z`).
fn rfc3339_unix(t: &str) -> Option<f64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut h = time.split(':');
    let (hh, mm): (i64, i64) = (h.next()?.parse().ok()?, h.next()?.parse().ok()?);
    let ss: f64 = h.next()?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fmt_opt(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "—".into(),
    }
}

/// The HTML page of the summary.
pub fn html(summary: &Value, theta2: &Theta2ByTarget) -> String {
    let mut h = String::new();
    let date = summary["date"].as_str().unwrap_or("");
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SST-1M night {date}</title>\n<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #bbb;padding:2px 6px;font-size:13px}}th{{background:#eee}}.bad{{color:#b00}}.skip{{color:#777}}.plots{{display:flex;flex-wrap:wrap;gap:12px}}.plots figure{{margin:0}}.plots svg{{width:460px;height:auto}}</style></head><body>\n<h1>SST-1M night {date}</h1>\n<p>Recipe <code>{}</code>, production <code>{}</code>.</p>\n",
        esc(summary["recipe"].as_str().unwrap_or("")),
        esc(summary["production"].as_str().unwrap_or(""))
    );
    // Targets.
    h.push_str("<h2>Targets</h2>\n<table id=\"targets\"><tr><th>target</th><th>setup</th><th>livetime (s)</th><th>N<sub>on</sub></th><th>N<sub>off</sub></th><th>α</th><th>excess</th><th>significance (Li &amp; Ma)</th></tr>\n");
    for t in summary["targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td class=\"sig\">{:.1}σ</td></tr>",
            esc(t["target"].as_str().unwrap_or("")),
            esc(t["setup"].as_str().unwrap_or("")),
            fmt_opt(&t["livetime_s"], 1),
            fmt_opt(&t["n_on"], 0),
            fmt_opt(&t["n_off"], 0),
            t["alpha"].as_f64().unwrap_or(0.0),
            fmt_opt(&t["excess"], 1),
            t["significance"].as_f64().unwrap_or(0.0)
        );
    }
    h.push_str("</table>\n<div class=\"plots\">\n");
    for ((target, setup), t) in theta2 {
        let width = THETA2_MAX / THETA2_BINS as f64;
        let x: Vec<f64> = (0..THETA2_BINS).map(|i| (i as f64 + 0.5) * width).collect();
        let span: Vec<(f64, f64)> = (0..THETA2_BINS).map(|i| (i as f64 * width, (i + 1) as f64 * width)).collect();
        let on_err: Vec<(f64, f64)> = t.on.iter().map(|&n| (n - n.sqrt(), n + n.sqrt())).collect();
        let off: Vec<f64> = t.off.iter().map(|&n| n * ALPHA).collect();
        let mut fig = Figure::new(
            &format!("{target} {setup}: θ² (ON, α·OFF)"),
            Axis::new("θ² (deg²)", Scale::Linear).range(0.0, THETA2_MAX),
            Axis::new("events", Scale::Linear),
        );
        fig.add(Series::points("ON", x.clone(), t.on.clone(), "#1f77b4").with_x_span(span.clone()).with_y_span(on_err));
        fig.add(Series::line("α·OFF", x, off, "#d62728"));
        let _ = writeln!(
            h,
            "<figure class=\"theta2\" data-target=\"{}\" data-setup=\"{}\">{}</figure>",
            esc(target),
            esc(setup),
            fig.to_svg()
        );
    }
    h.push_str("</div>\n");
    // Runs.
    h.push_str("<h2>Runs</h2>\n<table id=\"runs\"><tr><th>cs</th><th>run</th><th>target</th><th>wobble</th><th>duration (s)</th><th>events</th><th>rate (Hz)</th><th>NSB level (p.e.)</th><th>zenith</th><th>node</th><th>status</th><th>DL1</th><th>DL2</th><th>stereo</th></tr>\n");
    for r in summary["runs"].as_array().into_iter().flatten() {
        let status = r["status"].as_str().unwrap_or("");
        let class = match status {
            "analysed" => "",
            "skipped" => "skip",
            _ => "bad",
        };
        let outcome = |v: &Value| -> String {
            match v["outcome"].as_str() {
                None => "—".into(),
                Some(o @ ("failed" | "skipped")) => {
                    format!("<span class=\"bad\" title=\"{}\">{o}</span>", esc(v["error"].as_str().unwrap_or("")))
                }
                Some(o) => o.into(),
            }
        };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["cs"].as_str().unwrap_or("")),
            r["run"],
            esc(r["target"].as_str().unwrap_or("")),
            esc(r["wobble"].as_str().unwrap_or("")),
            fmt_opt(&r["duration_s"], 1),
            r["events"],
            fmt_opt(&r["rate_hz"], 1),
            fmt_opt(&r["nsb_level_pe"], 3),
            fmt_opt(&r["zenith_deg"], 1),
            esc(r["node"].as_str().unwrap_or("—")),
            status,
            r["reason"].as_str().map(|w| format!(": {}", esc(w))).unwrap_or_default(),
            outcome(&r["dl1"]),
            outcome(&r["dl2"]),
            outcome(&r["stereo_dl2"]),
        );
    }
    h.push_str("</table>\n");
    // Problems.
    let unreadable = summary["unreadable_files"].as_array().cloned().unwrap_or_default();
    let failed = summary["failed_activities"].as_array().cloned().unwrap_or_default();
    let notes = summary["notes"].as_array().cloned().unwrap_or_default();
    h.push_str("<h2>Problems</h2>\n<ul id=\"problems\">\n");
    for u in &unreadable {
        let _ = writeln!(
            h,
            "<li class=\"bad\">unreadable raw file {}: {}</li>",
            esc(u["file"].as_str().unwrap_or("")),
            esc(u["error"].as_str().unwrap_or(""))
        );
    }
    for f in &failed {
        let _ = writeln!(
            h,
            "<li class=\"bad\">{} failed: {}</li>",
            esc(f["step"].as_str().unwrap_or("")),
            esc(f["error"].as_str().unwrap_or(""))
        );
    }
    for n in notes.iter().chain(summary["production_notes"].as_array().into_iter().flatten()) {
        let _ = writeln!(h, "<li>{}</li>", esc(n.as_str().unwrap_or("")));
    }
    if unreadable.is_empty() && failed.is_empty() && notes.is_empty() {
        h.push_str("<li>none</li>\n");
    }
    h.push_str("</ul>\n");
    // DL3 and production.
    h.push_str("<h2>DL3</h2>\n<table id=\"dl3\"><tr><th>step</th><th>target</th><th>wobble</th><th>setup</th><th>cuts</th><th>node</th><th>runs</th><th>outcome</th></tr>\n");
    for d in summary["dl3"].as_array().into_iter().flatten() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(d["step"].as_str().unwrap_or("")),
            esc(d["target"].as_str().unwrap_or("")),
            esc(d["wobble"].as_str().unwrap_or("")),
            esc(d["setup"].as_str().unwrap_or("")),
            esc(d["cuts"].as_str().unwrap_or("")),
            esc(d["node"].as_str().unwrap_or("")),
            d["runs"],
            esc(d["outcome"].as_str().unwrap_or(""))
        );
    }
    h.push_str("</table>\n<h2>Models and IRFs used</h2>\n<table id=\"production\"><tr><th>node</th><th>zenith</th><th>azimuth</th><th>setup</th><th>models (sha256)</th><th>gammaness cuts</th><th>IRF, global cut</th><th>IRF, efficiency cuts</th></tr>\n");
    for n in summary["production_nodes"].as_array().into_iter().flatten() {
        for s in n["setups"].as_array().into_iter().flatten() {
            let mut models = String::new();
            for (tel, m) in s["models"].as_object().into_iter().flatten() {
                for (role, hash) in m.as_object().into_iter().flatten() {
                    let hash = hash.as_str().unwrap_or("");
                    let _ = write!(models, "{tel} {role} <code>{}</code><br>", esc(&hash[..hash.len().min(12)]));
                }
            }
            let short = |v: &Value| {
                v.as_str().map(|x| format!("<code>{}</code>", esc(&x[..x.len().min(12)]))).unwrap_or("—".into())
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{models}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(n["node"].as_str().unwrap_or("")),
                fmt_opt(&n["zenith_deg"], 1),
                fmt_opt(&n["azimuth_deg"], 1),
                esc(s["setup"].as_str().unwrap_or("")),
                short(&s["cuts"]),
                short(&s["irf_global"]),
                short(&s["irf_efficiency"])
            );
        }
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Builds the daily tree of the night under `daily_root/<date>/` (links to the store's
/// objects, each activity's log beside its product, the config, the summary) and swaps it in
/// whole, so that a reader never sees a half-made tree.
pub fn write_daily_tree(
    daily_root: &Path,
    s: &SummaryInputs,
    config_path: &Path,
    summary: &Value,
    html_page: &str,
) -> Result<PathBuf> {
    let steps = outcomes(s.report);
    let final_dir = daily_root.join(&s.date);
    let tmp = daily_root.join(format!(".tmp-{}-{}", s.date, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mk = |p: &Path| std::fs::create_dir_all(p).map_err(|e| Error::io(format!("cannot create {}", p.display()), e));
    mk(&tmp)?;
    let link = |step: &str, file: &str, to_dir: &Path, name: &str| -> Result<()> {
        let (word, _, key) = match steps.get(step) {
            Some(x) => x.clone(),
            None => return Ok(()),
        };
        mk(to_dir)?;
        if word == "ran" || word == "reused" {
            let view = s.views.join(step).join("all").join(file);
            if let Ok(object) = std::fs::canonicalize(&view) {
                std::os::unix::fs::symlink(&object, to_dir.join(name))
                    .map_err(|e| Error::io(format!("cannot link {}", to_dir.join(name).display()), e))?;
            }
        }
        if let Some(log) = log_of(s.db, key.as_ref()) {
            let stem = name.split('.').next().unwrap_or(name);
            std::fs::write(to_dir.join(format!("{stem}.log")), log)
                .map_err(|e| Error::io(format!("cannot write a log in {}", to_dir.display()), e))?;
        }
        Ok(())
    };
    for (run, fate) in &s.plan.fates {
        if !matches!(fate, Fate::Analysed { .. }) {
            continue;
        }
        let st = s.plan.run_steps.get(&(run.tel, run.run)).cloned().unwrap_or_default();
        let stem = run.file_name.trim_end_matches(".fits.fz");
        let base = tmp.join(&run.target);
        let cs = base.join(format!("cs{}", run.tel));
        if let Some(step) = &st.dl1 {
            link(step, "dl1.h5", &cs.join("dl1"), &format!("{stem}.dl1.h5"))?;
        }
        if let Some(step) = &st.dl2 {
            link(step, "dl2.h5", &cs.join("dl2"), &format!("{stem}.dl2.h5"))?;
        }
        if let Some(step) = &st.stereo {
            for tel in [1, 2] {
                link(
                    step,
                    &format!("dl1_tel{tel}.h5"),
                    &base.join("stereo/dl1"),
                    &format!("{stem}_stereo_tel{tel}.dl1.h5"),
                )?;
            }
        }
        if let Some(step) = &st.stereo_dl2 {
            link(step, "dl2_stereo.h5", &base.join("stereo/dl2"), &format!("{stem}_stereo.dl2.h5"))?;
        }
    }
    for d in &s.plan.dl3_steps {
        let dir = tmp.join(&d.target).join(&d.setup).join(if d.efficiency_cuts { "dl3_eff" } else { "dl3" });
        link(&d.step, "dl3.fits", &dir, &format!("dl3_{}_{}_{}.fits", d.target, d.wobble, d.setup))?;
    }
    for d in &s.plan.distribution_steps {
        let name = format!("intensity_hist_tel{}_{}_{}.h5", d.tel, d.target, d.wobble);
        for sub in ["distributions", "distributions_eff"] {
            link(&d.step, "intensity_hist.h5", &tmp.join(&d.target).join(&d.setup).join(sub), &name)?;
        }
    }
    // The night's data stores (one per setup and cut), as dl3-index made them.
    for setup in ["cs1", "cs2", "stereo"] {
        for eff in [false, true] {
            let step = format!("index-{setup}{}", if eff { "-eff" } else { "" });
            if !steps.contains_key(&step) {
                continue;
            }
            let dir = tmp.join("datastore").join(format!("{setup}{}", if eff { "_eff" } else { "" }));
            for file in ["hdu-index.fits.gz", "obs-index.fits.gz", "observations.fits"] {
                link(&step, file, &dir, file)?;
            }
        }
    }
    std::fs::copy(config_path, tmp.join("config.json"))
        .map_err(|e| Error::io(format!("cannot copy {}", config_path.display()), e))?;
    std::fs::write(tmp.join("summary.json"), serde_json::to_string_pretty(summary).expect("json"))
        .map_err(|e| Error::io(format!("cannot write {}", tmp.join("summary.json").display()), e))?;
    std::fs::write(tmp.join("summary.html"), html_page)
        .map_err(|e| Error::io(format!("cannot write {}", tmp.join("summary.html").display()), e))?;
    // Swap: the old tree aside, the new one in, the old one removed. Another nightly of the
    // same date may swap its own tree in between: try again a few times.
    let old = daily_root.join(format!(".old-{}-{}", s.date, std::process::id()));
    let mut last_error = None;
    for _ in 0..5 {
        match std::fs::rename(&final_dir, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot replace {}", final_dir.display()), e)),
        }
        let _ = std::fs::remove_dir_all(&old);
        match std::fs::rename(&tmp, &final_dir) {
            Ok(()) => return Ok(final_dir),
            Err(e) => last_error = Some(e),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Err(Error::io(format!("cannot write {}", final_dir.display()), last_error.expect("tried")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_times_parse_to_unix_seconds() {
        assert_eq!(super::rfc3339_unix("1970-01-01T00:00:00.000Z"), Some(0.0));
        assert_eq!(super::rfc3339_unix("2026-12-06T16:03:45.250Z"), Some(1_796_573_025.25));
        assert_eq!(super::rfc3339_unix("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(super::rfc3339_unix("garbage"), None);
    }
}
