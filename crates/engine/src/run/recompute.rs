//! Recomputable outputs during a run: when each may be deleted, how many may exist at once,
//! and which activities wait for one to be remade.
//!
//! A recomputable output (simulated R1 by default; any output a recipe step names) is deleted
//! from the store as soon as every activity of the run that consumes it has succeeded; its
//! record, maker and edges stay, and the maker stays reusable. An output no activity of the run
//! consumes is kept (it is what the recipe is for), and so is one whose consumer failed (the
//! next run needs it). Deleting is only an unlink of the object under its use lock
//! ([`crate::store::Store::drop_recomputable`]): the database already says the object may be
//! missing, so a crash at any point leaves a consistent store. An object still held in use when
//! its last consumer finishes (by another process, or for an instant by a command another
//! worker is starting, which carries a copy of every open file from fork until exec) is tried
//! again as the run goes on and at its end; one left over is deleted by the next run, whose
//! reused consumers release it the same way. Only products recorded as recomputable when they
//! were made are deleted: marking a step's output recomputable later does not reach back.
//!
//! Disk stays bounded: at most about `-j` activities whose recomputable outputs are still
//! waiting for consumers ("live" producers) exist at once; another producer waits while its
//! consumers can run. When nothing else can run it goes anyway, so nothing waits forever.
//!
//! An activity that must run and needs an input that was deleted waits while the input's
//! maker is remade (recursively, if the maker's own inputs were deleted too), then goes back to
//! the ready queue. This module only keeps the books; the coordinator sends the jobs.
use super::plan::{Node, Ref, StepInfo};
use std::collections::{BTreeSet, HashMap};

/// Who waits for an activity to be remade.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Waiter {
    /// An activity that must run once its inputs are back.
    Run(usize),
    /// A remake that needs this activity's outputs first.
    Remake(usize),
}

pub(super) struct Recomputables {
    /// (producer node, output index) → consumers in this run not yet finished.
    consumers_left: HashMap<(usize, usize), usize>,
    /// Outputs a consumer failed on: kept for the next run.
    keep: BTreeSet<(usize, usize)>,
    /// Per node: its recomputable outputs with consumers, if dispatched and not yet released.
    holds: Vec<usize>,
    /// Producers whose recomputable outputs may be on disk, waiting for consumers.
    pub(super) live: usize,
    /// Per node: who waits for it to be remade.
    waiters: Vec<Vec<Waiter>>,
    /// Per node: remakes it waits for (as a consumer to run, or as a remake itself).
    pub(super) waiting_on: Vec<usize>,
    /// Per node: a remake is in flight or waiting.
    remaking: Vec<bool>,
}

impl Recomputables {
    pub(super) fn new(nodes: &[Node], infos: &[StepInfo]) -> Recomputables {
        let mut consumers_left: HashMap<(usize, usize), usize> = HashMap::new();
        for node in nodes {
            for (u, k) in consumed(node) {
                if infos[nodes[u].step].recomputable[k] {
                    *consumers_left.entry((u, k)).or_default() += 1;
                }
            }
        }
        let n = nodes.len();
        Recomputables {
            consumers_left,
            keep: BTreeSet::new(),
            holds: vec![0; n],
            live: 0,
            waiters: vec![Vec::new(); n],
            waiting_on: vec![0; n],
            remaking: vec![false; n],
        }
    }

    /// How many of `i`'s recomputable outputs still have consumers to serve in this run.
    fn pending_outputs(&self, i: usize, infos: &[StepInfo], nodes: &[Node]) -> usize {
        (0..infos[nodes[i].step].recomputable.len())
            .filter(|&k| self.consumers_left.get(&(i, k)).is_some_and(|&c| c > 0))
            .count()
    }

    /// Whether running `i` would put recomputable objects on disk that wait for consumers.
    pub(super) fn makes_live_outputs(&self, i: usize, infos: &[StepInfo], nodes: &[Node]) -> bool {
        self.pending_outputs(i, infos, nodes) > 0
    }

    /// `i` is sent to a worker (to run or to be remade).
    pub(super) fn dispatched(&mut self, i: usize, infos: &[StepInfo], nodes: &[Node]) {
        let pending = self.pending_outputs(i, infos, nodes);
        if pending > 0 && self.holds[i] == 0 {
            self.holds[i] = pending;
            self.live += 1;
        }
    }

    /// `i` published nothing after all (it failed, or must wait for an input).
    pub(super) fn undispatched(&mut self, i: usize) {
        if self.holds[i] > 0 {
            self.holds[i] = 0;
            self.live -= 1;
        }
    }

    /// `j` finished (`ok`: ran or reused). Returns the objects that may now be deleted.
    pub(super) fn consumer_done(
        &mut self,
        j: usize,
        ok: bool,
        nodes: &[Node],
        produced: &[Option<Vec<String>>],
    ) -> Vec<String> {
        let mut deletable = Vec::new();
        for (u, k) in consumed(&nodes[j]) {
            let Some(left) = self.consumers_left.get_mut(&(u, k)) else { continue };
            *left -= 1;
            if !ok {
                self.keep.insert((u, k));
            }
            if *left > 0 {
                continue;
            }
            if !self.keep.contains(&(u, k)) {
                if let Some(h) = produced[u].as_ref().and_then(|p| p.get(k)) {
                    deletable.push(h.clone());
                }
            }
            if self.holds[u] > 0 {
                self.holds[u] -= 1;
                if self.holds[u] == 0 {
                    self.live -= 1;
                }
            }
        }
        deletable
    }

    /// Producers of `i`'s inputs whose objects are gone (deleted once consumed).
    pub(super) fn missing_makers(
        &self,
        i: usize,
        nodes: &[Node],
        produced: &[Option<Vec<String>>],
        present: impl Fn(&str) -> bool,
    ) -> Vec<usize> {
        let mut makers: Vec<usize> = consumed(&nodes[i])
            .filter(|&(u, k)| produced[u].as_ref().and_then(|p| p.get(k)).is_some_and(|h| !present(h)))
            .map(|(u, _)| u)
            .collect();
        makers.sort_unstable();
        makers.dedup();
        makers
    }

    /// `waiter` waits for `maker` to be remade. Returns true when the remake must be started
    /// (it was not already under way).
    pub(super) fn wait_for(&mut self, maker: usize, waiter: Waiter) -> bool {
        let who = match waiter {
            Waiter::Run(j) | Waiter::Remake(j) => j,
        };
        self.waiting_on[who] += 1;
        self.waiters[maker].push(waiter);
        !std::mem::replace(&mut self.remaking[maker], true)
    }

    /// The remake of `maker` ended: who waited for it, and (for each) whether it waits for
    /// nothing else now.
    pub(super) fn remade(&mut self, maker: usize) -> Vec<(Waiter, bool)> {
        self.remaking[maker] = false;
        std::mem::take(&mut self.waiters[maker])
            .into_iter()
            .map(|w| {
                let who = match w {
                    Waiter::Run(j) | Waiter::Remake(j) => j,
                };
                self.waiting_on[who] -= 1;
                (w, self.waiting_on[who] == 0)
            })
            .collect()
    }
}

/// The distinct (producer, output) pairs an activity consumes.
fn consumed(node: &Node) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut seen: Vec<(usize, usize)> = node
        .inputs
        .iter()
        .flat_map(|(_, refs)| refs.iter())
        .filter_map(|r| match *r {
            Ref::Out { node, output } => Some((node, output)),
            Ref::Raw { .. } => None,
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.into_iter()
}
