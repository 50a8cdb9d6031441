//! The `command` stage: runs any external program under provenance.
//!
//! This is how existing tools (sst1mpipe's scripts, ctapipe tools, shell utilities) run inside
//! sst1mflow today: their inputs come from the store, their declared outputs go into it, and
//! the activity key covers argv, declared outputs and the config keys they read.
//!
//! Parameters:
//!
//! | key           | meaning |
//! |---------------|---------|
//! | `argv`        | program and arguments, run directly (no shell); placeholders below |
//! | `outputs`     | `{role: "relative/path"}` or `{role: {"path": …, "kind": …}}`; paths stay inside the work directory |
//! | `config_keys` | dotted config keys the program reads (added to those named by placeholders) |
//! | `stdout`      | an output role that receives the program's standard output |
//! | `env`         | extra environment variables `{name: value}` (part of the key) |
//! | `confine`     | `true`: writes allowed only in the work directory and `/dev` (Landlock) [false] |
//!
//! Placeholders in argv: `{input:ROLE}` (a role with several files, alone in its argument,
//! expands to one argument per file), `{output:ROLE}`, `{config}` (a JSON file holding only the
//! declared config keys: the program cannot read what it did not declare), `{config:a.b}` (the
//! value; strings verbatim, anything else as canonical JSON), `{workdir}` (absolute; avoid it in
//! anything that reaches a product), and `{{`/`}}` for literal braces. Input, output and config
//! paths are relative to the work directory (inputs appear as
//! `.sst1mflow-in/<role>/<position>/<original file name>`: a link to a read-only file, a
//! read-only copy of a writable one such as a raw file read in place), so a tool that prints or embeds
//! its paths still gives the same bytes in any store. The program runs in the work directory
//! with standard input closed, in a clean environment: only `PATH`, `HOME` and `LANG` are passed
//! through from sst1mflow's own (see [`PASSED_ENV`]; not in the key, so a program must not let
//! them change its output), plus the declared `env` (in the key), plus
//! `SST1MFLOW_ACTIVITY_KEY` and `SST1MFLOW_PIPELINE_VERSION` so that a cooperating tool can
//! embed them in its products. The environment it got is written to the activity log.
//! Everything it prints goes to the activity log.
//!
//! It runs as its own process group; the activity ends when the whole group has exited (a
//! background child still writing an output is waited for), the group leader dies with the run
//! that started it, and a run that finds a killed run's work directory kills what still runs
//! there ([`crate::procs`]). It is no sandbox: it can read and write wherever its user can,
//! unless the step sets `"confine": true` (part of the key, as every parameter): the program
//! then runs under Landlock ([`crate::confine`]) and may write only in its work directory and
//! `/dev`, whatever user it runs as (`TMPDIR` points inside the work directory), so it can
//! write neither through its input links nor anywhere else; without Landlock in the kernel the
//! activity fails rather than run unconfined. Reading, the network and signals stay open.
//!
//! A non-zero exit, a death by signal, or a declared output that is missing, not a regular
//! file, or a symlink, fails the activity.
use crate::key::canonical_json;
use crate::recipe::type_name;
use crate::stage::{DeclaredOutput, Stage, StageContext, StagePlan};
use serde_json::Value;
use sst1mflow_base::error::{Error, Result};
use sst1mflow_base::text::suggestion;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

pub struct CommandStage;

/// The only variables of sst1mflow's environment a command sees (besides its declared `env`).
pub const PASSED_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

const PARAMS: &[&str] = &["argv", "outputs", "config_keys", "stdout", "env", "confine"];
/// Names inside the work directory that belong to the engine.
const RESERVED_PREFIXES: &[&str] = &[".owner", ".sst1mflow"];
const CONFIG_FILE: &str = ".sst1mflow-config.json";
/// `TMPDIR` of a confined command, inside its work directory.
const CONFINED_TMP: &str = ".sst1mflow-tmp";
const LOG_FILE: &str = ".sst1mflow-command.log";
const INPUT_DIR: &str = ".sst1mflow-in";

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Input(String),
    Output(String),
    ConfigFile,
    ConfigValue(String),
    WorkDir,
}

/// Whether `{name}` has the shape of a placeholder (`word` or `word:rest`, no spaces or
/// braces): anything else, such as an awk program's `{ print $1 }`, is literal text.
fn looks_like_placeholder(name: &str) -> bool {
    let (kind, rest) = name.split_once(':').unwrap_or((name, ""));
    !kind.is_empty()
        && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !rest.chars().any(|c| c.is_whitespace() || c == '{' || c == '}')
        && name.contains(':') != rest.is_empty()
}

fn parse_template(arg: &str, at: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = arg;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            text.push(c);
            rest = &rest[2..];
            continue;
        }
        if c == '{' {
            if let Some(close) = rest[1..].find('}') {
                let name = &rest[1..1 + close];
                if looks_like_placeholder(name) {
                    let piece = match name.split_once(':') {
                        None if name == "config" => Piece::ConfigFile,
                        None if name == "workdir" => Piece::WorkDir,
                        Some(("input", r)) => Piece::Input(r.to_string()),
                        Some(("output", r)) => Piece::Output(r.to_string()),
                        Some(("config", k)) => Piece::ConfigValue(k.to_string()),
                        _ => {
                            let kind = name.split(':').next().unwrap_or("");
                            return Err(Error::msg(format!(
                                "{at}: argv \"{arg}\": unknown placeholder {{{name}}}{} (write {{{{ for a literal brace)",
                                suggestion(kind, ["input", "output", "config", "workdir"])
                            )));
                        }
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece);
                    rest = &rest[close + 2..];
                    continue;
                }
            }
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn check_output_path(role: &str, path: &str, at: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let bad = |why: &str| Error::msg(format!("{at}: output \"{role}\" path \"{path}\" {why}"));
    if path.is_empty() {
        return Err(bad("is empty"));
    }
    if p.is_absolute() {
        return Err(bad("is absolute; outputs must stay inside the activity's work directory"));
    }
    for c in p.components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_string_lossy();
                if RESERVED_PREFIXES.iter().any(|r| s.starts_with(r)) {
                    return Err(bad("uses a name reserved by sst1mflow"));
                }
            }
            _ => {
                return Err(bad(
                    "must not contain \"..\", \".\" or a root; outputs must stay inside the activity's work directory",
                ))
            }
        }
    }
    Ok(p.to_path_buf())
}

struct Parsed {
    argv: Vec<Vec<Piece>>,
    stdout: Option<String>,
    env: Vec<(String, String)>,
    /// Run under [`crate::confine`]: writes only in the work directory and `/dev`.
    confine: bool,
}

fn parse_params(params: &Value, input_roles: &[&str], at: &str) -> Result<(Parsed, StagePlan)> {
    let obj = params.as_object().ok_or_else(|| Error::msg(format!("{at}: params must be an object")))?;
    for k in obj.keys() {
        if !PARAMS.contains(&k.as_str()) {
            return Err(Error::msg(format!(
                "{at}.params: unknown key \"{k}\" for stage command{}",
                suggestion(k, PARAMS.iter().copied())
            )));
        }
    }
    let argv_v = obj.get("argv").ok_or_else(|| Error::msg(format!("{at}.params: missing required key \"argv\"")))?;
    let argv_list = argv_v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::msg(format!("{at}.params: \"argv\" must be a non-empty array of strings")))?;
    let mut argv = Vec::new();
    for a in argv_list {
        let s = a.as_str().ok_or_else(|| {
            Error::msg(format!("{at}.params: \"argv\" entries must be strings, found {}", type_name(a)))
        })?;
        argv.push(parse_template(s, at)?);
    }
    if !matches!(argv[0].as_slice(), [Piece::Text(t)] if !t.is_empty())
        && !matches!(argv[0].as_slice(), [Piece::Input(_)])
    {
        return Err(Error::msg(format!("{at}.params: argv[0] must name a program")));
    }

    let outputs_v =
        obj.get("outputs").ok_or_else(|| Error::msg(format!("{at}.params: missing required key \"outputs\"")))?;
    let outputs_obj = outputs_v
        .as_object()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::msg(format!("{at}.params: \"outputs\" must be a non-empty object {{role: path}}")))?;
    let mut outputs = Vec::new();
    for (role, spec) in outputs_obj {
        let (path, kind) = match spec {
            Value::String(p) => (p.as_str(), "file".to_string()),
            Value::Object(o) => {
                for k in o.keys() {
                    if k != "path" && k != "kind" {
                        return Err(Error::msg(format!(
                            "{at}.params.outputs.{role}: unknown key \"{k}\"{}",
                            suggestion(k, ["path", "kind"])
                        )));
                    }
                }
                let p = o.get("path").and_then(Value::as_str).ok_or_else(|| {
                    Error::msg(format!("{at}.params.outputs.{role}: \"path\" is required and must be a string"))
                })?;
                let kind = o.get("kind").and_then(Value::as_str).unwrap_or("file").to_string();
                (p, kind)
            }
            other => {
                return Err(Error::msg(format!(
                    "{at}.params.outputs.{role}: expected a path string or {{\"path\", \"kind\"}}, found {}",
                    type_name(other)
                )))
            }
        };
        let file = check_output_path(role, path, at)?;
        if outputs.iter().any(|o: &DeclaredOutput| o.file == file) {
            return Err(Error::msg(format!("{at}.params.outputs: two outputs share the path \"{path}\"")));
        }
        outputs.push(DeclaredOutput { role: role.clone(), file, kind });
    }

    let mut config_keys: Vec<String> = match obj.get("config_keys") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::msg(format!("{at}.params: \"config_keys\" entries must be strings")))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::msg(format!("{at}.params: \"config_keys\" must be an array of strings"))),
    };
    let output_roles: Vec<&str> = outputs.iter().map(|o| o.role.as_str()).collect();
    for pieces in &argv {
        for p in pieces {
            match p {
                Piece::Input(r) if !input_roles.contains(&r.as_str()) => {
                    return Err(Error::msg(format!(
                        "{at}.params.argv: {{input:{r}}} names no input role of this step{}",
                        suggestion(r, input_roles.iter().copied())
                    )))
                }
                Piece::Output(r) if !output_roles.contains(&r.as_str()) => {
                    return Err(Error::msg(format!(
                        "{at}.params.argv: {{output:{r}}} names no declared output{}",
                        suggestion(r, output_roles.iter().copied())
                    )))
                }
                Piece::ConfigValue(k) if !config_keys.contains(k) => config_keys.push(k.clone()),
                _ => {}
            }
        }
    }
    config_keys.sort();
    config_keys.dedup();

    let stdout = match obj.get("stdout") {
        None => None,
        Some(Value::String(r)) => {
            if !output_roles.contains(&r.as_str()) {
                return Err(Error::msg(format!(
                    "{at}.params: \"stdout\" names \"{r}\", which is not a declared output{}",
                    suggestion(r, output_roles.iter().copied())
                )));
            }
            Some(r.clone())
        }
        Some(_) => return Err(Error::msg(format!("{at}.params: \"stdout\" must name an output role"))),
    };
    let env = match obj.get("env") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| Error::msg(format!("{at}.params.env.{k}: must be a string")))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::msg(format!("{at}.params: \"env\" must be an object of strings"))),
    };
    let confine = match obj.get("confine") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Error::msg(format!(
                "{at}.params: \"confine\" must be true or false, found {}",
                type_name(other)
            )))
        }
    };
    Ok((Parsed { argv, stdout, env, confine }, StagePlan { config_keys, config_read: Vec::new(), outputs }))
}

fn lookup<'v>(config: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(config, |node, part| node.get(part))
}

/// Presents every input inside the work directory as `.sst1mflow-in/<role>/<position>/<name>`
/// (see [`present_input`]), and returns those relative paths by role. Commands run
/// in the work directory, so every path they see is relative and the same in any store: a
/// tool that prints or embeds its input paths still gives identical bytes everywhere.
fn link_inputs(ctx: &StageContext) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut out = std::collections::BTreeMap::new();
    for (role, files) in ctx.inputs {
        let mut rel = Vec::with_capacity(files.len());
        for (pos, f) in files.iter().enumerate() {
            let name = if f.name.is_empty() || f.name.contains('/') || f.name.starts_with('.') {
                "input".to_string()
            } else {
                f.name.clone()
            };
            let dir = format!("{INPUT_DIR}/{role}/{pos}");
            let abs_dir = ctx.work_dir.join(&dir);
            fs::create_dir_all(&abs_dir).map_err(|e| Error::io(format!("cannot create {}", abs_dir.display()), e))?;
            present_input(&f.path, &abs_dir.join(&name))?;
            rel.push(format!("{dir}/{name}"));
        }
        out.insert(role.clone(), rel);
    }
    Ok(out)
}

/// One input at `at`: a symlink when the file is read-only (a store object, a read-only raw
/// archive), else a read-only copy. A raw input read in place is the user's own file, often
/// writable: a command that opened its input for writing (or appended to it) would change it
/// through a link, so it gets a copy, and the user's file is never written through (the
/// activity's fingerprint check would only notice afterwards).
fn present_input(path: &Path, at: &Path) -> Result<()> {
    let mode = fs::metadata(path)
        .map_err(|e| Error::io(format!("cannot read input {}", path.display()), e))?
        .permissions()
        .mode();
    if mode & 0o222 == 0 {
        return std::os::unix::fs::symlink(path, at)
            .map_err(|e| Error::io(format!("cannot link input {} into {}", path.display(), at.display()), e));
    }
    fs::copy(path, at)
        .map_err(|e| Error::io(format!("cannot copy input {} to {}", path.display(), at.display()), e))?;
    fs::set_permissions(at, fs::Permissions::from_mode(0o444))
        .map_err(|e| Error::io(format!("cannot make {} read-only", at.display()), e))
}

fn expand(parsed: &Parsed, ctx: &StageContext) -> Result<Vec<String>> {
    let inputs = link_inputs(ctx)?;
    let mut args = Vec::new();
    for pieces in &parsed.argv {
        if let [Piece::Input(role)] = pieces.as_slice() {
            for p in inputs.get(role).map(Vec::as_slice).unwrap_or(&[]) {
                args.push(p.clone());
            }
            continue;
        }
        let mut arg = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => arg.push_str(t),
                Piece::Input(role) => {
                    let files = inputs.get(role).map(Vec::as_slice).unwrap_or(&[]);
                    if files.len() != 1 {
                        return Err(Error::msg(format!(
                            "{{input:{role}}} inside a longer argument needs exactly one file, but the role has {}",
                            files.len()
                        )));
                    }
                    arg.push_str(&files[0]);
                }
                Piece::Output(role) => {
                    let out = ctx.plan.outputs.iter().find(|o| &o.role == role).expect("validated at plan time");
                    arg.push_str(&out.file.to_string_lossy());
                }
                Piece::ConfigFile => arg.push_str(CONFIG_FILE),
                Piece::ConfigValue(k) => match lookup(ctx.config, k) {
                    Some(Value::String(s)) => arg.push_str(s),
                    Some(v) => arg.push_str(&canonical_json(v)),
                    None => return Err(Error::msg(format!("config key \"{k}\" missing at run time"))),
                },
                Piece::WorkDir => arg.push_str(&ctx.work_dir.to_string_lossy()),
            }
        }
        args.push(arg);
    }
    Ok(args)
}

impl Stage for CommandStage {
    fn name(&self) -> &'static str {
        "command"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        parse_params(params, input_roles, at).map(|(_, plan)| plan)
    }

    fn uses_config_schema(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let (parsed, _) =
            parse_params(ctx.params, &ctx.inputs.keys().map(String::as_str).collect::<Vec<_>>(), "command")?;
        let args = expand(&parsed, ctx)?;
        if parsed.argv.iter().flatten().any(|p| *p == Piece::ConfigFile) {
            let path = ctx.work_dir.join(CONFIG_FILE);
            let text = serde_json::to_string_pretty(ctx.config).expect("config serialises");
            fs::write(&path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        for out in &ctx.plan.outputs {
            if let Some(parent) = ctx.work_dir.join(&out.file).parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
            }
        }
        let _ = writeln!(ctx.log, "$ {}", shell_quote(&args));
        let log_path = ctx.work_dir.join(LOG_FILE);
        let log_file =
            File::create(&log_path).map_err(|e| Error::io(format!("cannot create {}", log_path.display()), e))?;
        let stderr = log_file.try_clone().map_err(|e| Error::io("cannot duplicate log handle".to_string(), e))?;
        let stdout: Stdio = match &parsed.stdout {
            Some(role) => {
                let out = ctx.plan.outputs.iter().find(|o| &o.role == role).expect("validated");
                let p = ctx.work_dir.join(&out.file);
                File::create(&p).map_err(|e| Error::io(format!("cannot create {}", p.display()), e))?.into()
            }
            None => log_file.into(),
        };
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]).current_dir(ctx.work_dir).stdin(Stdio::null()).stdout(stdout).stderr(stderr).env_clear();
        let mut env: Vec<(String, String)> =
            PASSED_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
        env.push(("SST1MFLOW_ACTIVITY_KEY".into(), ctx.activity_key.into()));
        env.push(("SST1MFLOW_PIPELINE_VERSION".into(), ctx.pipeline_version.into()));
        env.extend(parsed.env.iter().cloned());
        // Confined: the ruleset is built here, applied in the child before exec; temporary
        // files go to a directory inside the work directory, the one place it may write.
        let ruleset = if parsed.confine {
            let tmp = ctx.work_dir.join(CONFINED_TMP);
            fs::create_dir_all(&tmp).map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
            env.push(("TMPDIR".into(), tmp.display().to_string()));
            let ruleset = crate::confine::Ruleset::for_work_dir(ctx.work_dir)?;
            let _ = writeln!(
                ctx.log,
                "# confined (Landlock ABI {}): writes only in the work directory and /dev",
                ruleset.abi
            );
            Some(ruleset)
        } else {
            None
        };
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(ctx.log, "# environment: {}", shown.join(" "));
        // Its own process group, so that everything it starts can be waited for and killed as
        // one; the leader dies with the worker that started it (PR_SET_PDEATHSIG), and what a
        // killed run leaves behind is killed by the next run before it reuses the work dir.
        cmd.process_group(0);
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                match &ruleset {
                    Some(r) => r.restrict_current_process(),
                    None => Ok(()),
                }
            });
        }
        let status = cmd.spawn().and_then(|mut child| {
            let pgid = child.id() as i32;
            let status = child.wait()?;
            // A background child of the command may still write its outputs: wait for the
            // whole group before anything is read or published.
            let mut said = false;
            let mut pause = std::time::Duration::from_millis(5);
            while crate::procs::group_alive(pgid) {
                if !said {
                    let _ = writeln!(ctx.log, "# waiting for background processes the command left running");
                    said = true;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            Ok(status)
        });
        let printed = fs::read(&log_path).unwrap_or_default();
        let _ = ctx.log.write_all(&printed);
        let status = status.map_err(|e| Error::io(format!("cannot start \"{}\"", args[0]), e))?;
        if !status.success() {
            use std::os::unix::process::ExitStatusExt;
            return Err(Error::msg(match (status.code(), status.signal()) {
                (Some(code), _) => format!("command \"{}\" exited with status {code}", args[0]),
                (None, Some(sig)) => format!("command \"{}\" was killed by signal {sig}", args[0]),
                _ => format!("command \"{}\" failed", args[0]),
            }));
        }
        let work_dir = fs::canonicalize(ctx.work_dir)
            .map_err(|e| Error::io(format!("cannot resolve {}", ctx.work_dir.display()), e))?;
        for out in &ctx.plan.outputs {
            let p = ctx.work_dir.join(&out.file);
            // Every directory on the way must still be inside the work directory: a command that
            // replaced `sub` by a symlink to elsewhere must not have an outside file published.
            if let Some(parent) = p.parent() {
                let real = fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
                if !real.starts_with(&work_dir) {
                    return Err(Error::msg(format!(
                        "declared output \"{}\" ({}) lies outside the work directory (its directory resolves to {})",
                        out.role,
                        out.file.display(),
                        real.display()
                    )));
                }
            }
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_file() && m.nlink() > 1 => {
                    // A hard link shares its inode with a file elsewhere: publishing it would make
                    // that file read-only, and a later write to it would corrupt the object.
                    return Err(Error::msg(format!(
                        "declared output \"{}\" ({}) is a hard link ({} links); outputs must be files the command wrote",
                        out.role,
                        out.file.display(),
                        m.nlink()
                    )));
                }
                Ok(m) if m.file_type().is_file() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::msg(format!(
                        "declared output \"{}\" ({}) is a symlink; outputs must be regular files written in the work directory",
                        out.role,
                        out.file.display()
                    )))
                }
                Ok(_) => {
                    return Err(Error::msg(format!(
                        "declared output \"{}\" ({}) is not a regular file",
                        out.role,
                        out.file.display()
                    )))
                }
                Err(_) => {
                    return Err(Error::msg(format!(
                        "command \"{}\" wrote no declared output \"{}\" ({})",
                        args[0],
                        out.role,
                        out.file.display()
                    )))
                }
            }
        }
        Ok(())
    }
}

fn shell_quote(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_cannot_escape_the_work_directory() {
        for bad in ["../x", "/tmp/x", "a/../../x", "./x", ".owner", ""] {
            let p = json!({"argv": ["true"], "outputs": {"o": bad}});
            assert!(CommandStage.plan(&p, &[], "steps[0]").is_err(), "{bad} accepted");
        }
        let p = json!({"argv": ["true"], "outputs": {"o": "sub/dir/x.h5"}});
        assert!(CommandStage.plan(&p, &[], "s").is_ok());
    }

    #[test]
    fn placeholders_are_validated_and_config_keys_collected() {
        let p = json!({"argv": ["awk", "-v", "t={config:sel.min}", "{input:ev}", "{{x}}"],
                       "outputs": {"o": "o.txt"}, "stdout": "o", "config_keys": ["b.c"]});
        let plan = CommandStage.plan(&p, &["ev"], "s").unwrap();
        assert_eq!(plan.config_keys, vec!["b.c".to_string(), "sel.min".to_string()]);
        let e = CommandStage
            .plan(&json!({"argv": ["x", "{inptu:ev}"], "outputs": {"o": "o"}}), &["ev"], "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean \"input\""), "{e}");
        let e = CommandStage
            .plan(&json!({"argv": ["x", "{input:evs}"], "outputs": {"o": "o"}}), &["ev"], "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean \"ev\""), "{e}");
        let e = CommandStage.plan(&json!({"argv": ["x"], "outptus": {}}), &[], "s").unwrap_err().to_string();
        assert!(e.contains("did you mean \"outputs\""), "{e}");
        assert_eq!(parse_template("a{{b}}", "s").unwrap(), vec![Piece::Text("a{b}".into())]);
        assert_eq!(parse_template("END { print NR }", "s").unwrap(), vec![Piece::Text("END { print NR }".into())]);
        assert_eq!(
            parse_template("--in={input:ev}.x", "s").unwrap(),
            vec![Piece::Text("--in=".into()), Piece::Input("ev".into()), Piece::Text(".x".into())]
        );
    }
}
