//! The activity runner: runs one stage on one activity's inputs in a private work directory of
//! a store, under a panic guard, and publishes the outputs the stage declared.
//!
//! It is the only place a stage's `run` is called. The local executor (`run`) calls it inside a
//! worker, between taking the activity's lock and recording it; `reproduce` calls it against a
//! scratch store; the SLURM worker calls [`run_stage`] on a cluster node and leaves publishing
//! to the coordinator. It does not touch the
//! database: what to record, and whether the outputs are the expected ones, is the caller's
//! business, so the same bytes come out whoever drives it.
use crate::stage::{InputFile, Stage, StageContext, StagePlan};
use crate::store::Store;
use serde_json::Value;
use sst1mflow_base::error::{Error, Result};
use std::collections::BTreeMap;

/// Everything one activity is run from.
pub struct Activity<'a> {
    pub stage: &'a dyn Stage,
    pub plan: &'a StagePlan,
    pub key: &'a str,
    pub pipeline_version: &'a str,
    pub params: &'a Value,
    /// The config subset the stage declared.
    pub config: &'a Value,
    /// Every input, each with its role and position; their paths must be readable.
    pub inputs: &'a [InputFile],
}

/// One declared output, published into the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub role: String,
    pub kind: String,
    pub hash: String,
    pub size: u64,
}

/// How one activity's run went, wherever it ran: its outputs (published) or error, when and
/// on which machine, and the cluster job it was (`None` when run here).
pub struct Execution {
    pub result: Result<Vec<Published>>,
    pub started_at: String,
    pub ended_at: String,
    pub host: String,
    pub executor: Option<Value>,
}

/// Runs the activity on this machine ([`run_activity`]), timed.
pub fn execute_locally(store: &Store, activity: &Activity, log: &mut Vec<u8>) -> Execution {
    let started_at = crate::provenance::now_utc();
    let host = crate::provenance::host_name();
    let _ = std::io::Write::write_fmt(log, format_args!("# started {started_at} on {host}\n"));
    let result = run_activity(store, activity, log);
    Execution { result, started_at, ended_at: crate::provenance::now_utc(), host, executor: None }
}

/// Runs the activity's stage in a fresh work directory of `store` (named by the key), writing
/// its log into `log`, then publishes every declared output in plan order. A panic in the
/// stage is an error naming the stage, never a crash of the caller.
pub fn run_activity(store: &Store, activity: &Activity, log: &mut Vec<u8>) -> Result<Vec<Published>> {
    let work = store.work_dir(&activity.key[..16.min(activity.key.len())])?;
    run_stage(activity, &work.path, log)?;
    let mut published = Vec::with_capacity(activity.plan.outputs.len());
    for declared in &activity.plan.outputs {
        let d = store.publish(&work.path.join(&declared.file))?;
        published.push(Published {
            role: declared.role.clone(),
            kind: declared.kind.clone(),
            hash: d.hash,
            size: d.size,
        });
    }
    Ok(published)
}

/// Runs the activity's stage in `work` (an empty directory the caller owns), under the panic
/// guard, leaving its declared outputs there. A cluster worker calls this and hashes the
/// outputs itself; whoever records the activity publishes them.
pub fn run_stage(activity: &Activity, work: &std::path::Path, log: &mut Vec<u8>) -> Result<()> {
    let mut by_role: BTreeMap<String, Vec<InputFile>> = BTreeMap::new();
    for input in activity.inputs {
        by_role.entry(input.role.clone()).or_default().push(input.clone());
    }
    for files in by_role.values_mut() {
        files.sort_by_key(|f| f.position);
    }
    let stage = activity.stage;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stage.run(&mut StageContext {
            inputs: &by_role,
            params: activity.params,
            config: activity.config,
            plan: activity.plan,
            work_dir: work,
            activity_key: activity.key,
            pipeline_version: activity.pipeline_version,
            log,
        })
    }));
    match outcome {
        Ok(result) => result.map_err(|e| name_the_inputs(e, activity.inputs)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::msg(format!("stage {} panicked: {what}", stage.name())))
        }
    }
}

/// A stage's error as the user reads it: an input seen only by its path inside the store
/// (`…/objects/ab/…`, meaningless to whoever named the file) is named by its own name too.
fn name_the_inputs(e: Error, inputs: &[InputFile]) -> Error {
    let mut text = e.to_string();
    for input in inputs {
        let path = input.path.display().to_string();
        if !input.name.is_empty() && !path.ends_with(&input.name) && text.contains(&path) && !text.contains(&input.name)
        {
            text = text.replace(&path, &format!("{} ({path})", input.name));
        }
    }
    if text == e.to_string() {
        e
    } else {
        Error::msg(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::DeclaredOutput;

    #[test]
    fn an_input_seen_by_its_object_path_is_named() {
        let input = |name: &str, path: &str| InputFile {
            role: "dl2".into(),
            position: 0,
            hash: "ab".repeat(32),
            path: path.into(),
            name: name.into(),
        };
        let object = input("run7_dl2.h5", "/s/objects/ab/abab");
        let said =
            name_the_inputs(Error::msg("/s/objects/ab/abab: not a readable DL2 file"), std::slice::from_ref(&object));
        assert_eq!(said.to_string(), "run7_dl2.h5 (/s/objects/ab/abab): not a readable DL2 file");
        // Already named, or a file read in place under its own name: unchanged.
        let named =
            name_the_inputs(Error::msg("input run7_dl2.h5: /s/objects/ab/abab: bad"), std::slice::from_ref(&object));
        assert_eq!(named.to_string(), "input run7_dl2.h5: /s/objects/ab/abab: bad");
        let raw = input("r.fits.fz", "/data/r.fits.fz");
        assert_eq!(
            name_the_inputs(Error::msg("/data/r.fits.fz: truncated"), &[raw]).to_string(),
            "/data/r.fits.fz: truncated"
        );
    }
    use std::path::Path;

    struct Panics;
    impl Stage for Panics {
        fn name(&self) -> &'static str {
            "panics"
        }
        fn version(&self) -> &'static str {
            "1"
        }
        fn plan(&self, _: &Value, _: &[&str], _: &str) -> Result<StagePlan> {
            Ok(StagePlan::default())
        }
        fn run(&self, ctx: &mut StageContext) -> Result<()> {
            let first = &ctx.inputs["x"][0];
            panic!("input {} at {} of {}", first.name, first.position, ctx.inputs["x"].len());
        }
    }

    struct Copies;
    impl Stage for Copies {
        fn name(&self) -> &'static str {
            "copies"
        }
        fn version(&self) -> &'static str {
            "1"
        }
        fn plan(&self, _: &Value, _: &[&str], _: &str) -> Result<StagePlan> {
            Ok(StagePlan {
                config_keys: vec![],
                config_read: vec![],
                outputs: vec![DeclaredOutput { role: "out".into(), file: "out.txt".into(), kind: "text".into() }],
            })
        }
        fn run(&self, ctx: &mut StageContext) -> Result<()> {
            let names: Vec<&str> = ctx.inputs["x"].iter().map(|f| f.name.as_str()).collect();
            std::fs::write(ctx.work_dir.join("out.txt"), names.join(",")).map_err(|e| Error::io("write", e))
        }
    }

    fn input(position: u32, name: &str) -> InputFile {
        InputFile {
            role: "x".into(),
            position,
            hash: "0".repeat(64),
            path: Path::new("/dev/null").into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_panic_is_an_error_and_outputs_come_in_plan_order_with_inputs_by_position() {
        let dir = std::env::temp_dir().join(format!("sst1mflow-runner-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        let inputs = [input(1, "b"), input(0, "a")];
        let (params, config) = (Value::Null, Value::Null);
        let plan = Panics.plan(&params, &[], "t").unwrap();
        let a = Activity {
            stage: &Panics,
            plan: &plan,
            key: &"1".repeat(64),
            pipeline_version: "v",
            params: &params,
            config: &config,
            inputs: &inputs,
        };
        let e = run_activity(&store, &a, &mut Vec::new()).unwrap_err().to_string();
        assert_eq!(e, "stage panics panicked: input a at 0 of 2");
        let plan = Copies.plan(&params, &[], "t").unwrap();
        let a = Activity { stage: &Copies, plan: &plan, key: &"2".repeat(64), ..a };
        let out = run_activity(&store, &a, &mut Vec::new()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(std::fs::read_to_string(store.object_path(&out[0].hash)).unwrap(), "a,b");
        assert_eq!((out[0].role.as_str(), out[0].size), ("out", 3));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
