//! The processes of a `command` activity, seen through Linux's `/proc`: whether any process of
//! its process group is still running (a command that left a background child must not have
//! its outputs published while the child still writes them), and killing what a dead run left
//! behind in a work directory (so a resumed run never executes a command twice at once).
//!
//! `/proc/<pid>/stat` gives the state and process group; `/proc/<pid>/cwd` where a process
//! works. Zombies count as gone: they write nothing, and an init that does not reap them must
//! not make us wait forever.
use std::path::Path;

/// (pid, state, process group) of every process, from `/proc/*/stat`.
fn processes() -> Vec<(i32, char, i32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let _ppid = fields.next();
        let Some(pgrp) = fields.next().and_then(|s| s.parse::<i32>().ok()) else { continue };
        out.push((pid, state, pgrp));
    }
    out
}

/// Whether a live (non-zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    processes().iter().any(|&(_, state, g)| g == pgid && state != 'Z')
}

/// Kills (SIGKILL) every process working inside `dir`, and the whole process group of each:
/// what a killed run's command left running. Returns how many groups were killed.
pub fn kill_processes_under(dir: &Path) -> usize {
    let mut groups: Vec<i32> = Vec::new();
    for (pid, state, pgrp) in processes() {
        if state == 'Z' || pid == std::process::id() as i32 {
            continue;
        }
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else { continue };
        if cwd.starts_with(dir) && !groups.contains(&pgrp) {
            groups.push(pgrp);
        }
    }
    let me = unsafe { libc::getpgrp() };
    for &g in &groups {
        if g > 1 && g != me {
            unsafe {
                libc::kill(-g, libc::SIGKILL);
            }
        }
    }
    groups.len()
}
