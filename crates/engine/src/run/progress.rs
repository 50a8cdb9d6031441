//! The progress line on stderr: input registration, then activities done, ran, reused,
//! failed, running and queued. Shown only on a terminal and without `--quiet`.
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A one-line progress display on stderr, redrawn at most ten times a second.
pub(super) struct Progress {
    pub(super) enabled: bool,
    pub(super) total: usize,
    pub(super) jobs: usize,
    pub(super) last: Instant,
}

impl Progress {
    pub(super) fn due(&mut self, force: bool) -> bool {
        if !self.enabled || (!force && self.last.elapsed() < Duration::from_millis(100)) {
            return false;
        }
        self.last = Instant::now();
        true
    }

    pub(super) fn registering(&mut self, done: usize, total: usize) {
        if self.due(done == total) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[Kregistering inputs {done}/{total}");
        }
    }

    pub(super) fn hashing(&mut self, done: usize, total: usize) {
        if self.due(done == total) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[Khashing new inputs {done}/{total}");
        }
    }

    pub(super) fn show(
        &mut self,
        done: usize,
        ran: usize,
        reused: usize,
        failed: usize,
        dispatched: usize,
        force: bool,
    ) {
        if !self.due(force) {
            return;
        }
        let running = dispatched.min(self.jobs);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K[{done:>w$}/{}] ran {ran} · reused {reused} · failed {failed} · running {running} · queued {}",
            self.total,
            dispatched - running,
            w = self.total.to_string().len()
        );
        let _ = err.flush();
    }

    pub(super) fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Whether progress should be shown: stderr is a terminal and the user did not ask for quiet.
pub fn want_progress(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}
