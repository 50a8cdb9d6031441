//! The DAG's bookkeeping during a run: which activities are ready, which are waiting on how
//! many others, and what became of each. Finishing an activity resolves everything that thereby
//! becomes decidable: dependents whose inputs are all done become ready; dependents of a
//! failed or skipped activity are skipped (and of one that would run, in a dry run, "would run
//! after it"), transitively, so independent branches go on and nothing waits forever.
//!
//! Of the activities ready at once, those reading the most bytes of raw inputs go first, then
//! plan order: the longest jobs first (the makespan rule of thumb), so that a run's last
//! activities are short ones and the cores finish together instead of one core finishing the
//! night's largest raw file alone. An activity put back (held for the disk budget, or woken
//! after waiting) goes behind every activity that is ready meanwhile.
use super::plan::{Node, StepInfo};
use super::Outcome;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The order of ready activities: (not put back, raw input bytes, earlier in plan order).
type Priority = (bool, u64, Reverse<usize>);

pub(super) struct Schedule {
    dependents: Vec<Vec<usize>>,
    remaining: Vec<usize>,
    /// Bytes of raw inputs each activity reads.
    weights: Vec<u64>,
    ready: BinaryHeap<Priority>,
    /// What became of each activity (`None` while undecided).
    pub(super) outcome: Vec<Option<Outcome>>,
    /// Activities decided so far.
    pub(super) done: usize,
}

impl Schedule {
    /// `weights`: the bytes of raw inputs of each node.
    pub(super) fn new(nodes: &[Node], weights: Vec<u64>) -> Schedule {
        assert_eq!(weights.len(), nodes.len());
        let n = nodes.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut remaining: Vec<usize> = vec![0; n];
        for (i, node) in nodes.iter().enumerate() {
            remaining[i] = node.deps.len();
            for &d in &node.deps {
                dependents[d].push(i);
            }
        }
        let ready = (0..n).filter(|&i| remaining[i] == 0).map(|i| (true, weights[i], Reverse(i))).collect();
        Schedule { dependents, remaining, weights, ready, outcome: vec![None; n], done: 0 }
    }

    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub(super) fn next_ready(&mut self) -> Option<usize> {
        self.ready.pop().map(|(_, _, Reverse(i))| i)
    }

    /// Puts back an activity that was ready but had to wait (for the disk budget of
    /// recomputable outputs, or for an input to be remade).
    pub(super) fn requeue(&mut self, i: usize) {
        self.ready.push((false, self.weights[i], Reverse(i)));
    }

    /// Records what became of `start` and resolves everything that becomes decidable.
    pub(super) fn finish(&mut self, start: usize, outcome: Outcome, nodes: &[Node], infos: &[StepInfo]) {
        self.outcome[start] = Some(outcome);
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            self.done += 1;
            for k in 0..self.dependents[i].len() {
                let d = self.dependents[i][k];
                self.remaining[d] -= 1;
                if self.remaining[d] > 0 {
                    continue;
                }
                let blocker = nodes[d].deps.iter().find_map(|&u| match &self.outcome[u] {
                    Some(Outcome::Failed(_)) | Some(Outcome::Skipped(_)) => Some((u, false)),
                    Some(Outcome::WouldRun(_)) | Some(Outcome::WouldRunAfter(_)) => Some((u, true)),
                    _ => None,
                });
                match blocker {
                    None => self.ready.push((true, self.weights[d], Reverse(d))),
                    Some((u, dry)) => {
                        let name = format!("{}/{}", infos[nodes[u].step].name, nodes[u].label);
                        self.outcome[d] = Some(if dry {
                            Outcome::WouldRunAfter(name)
                        } else {
                            Outcome::Skipped(format!("needs {name}, which did not complete"))
                        });
                        stack.push(d);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(deps: Vec<usize>) -> Node {
        Node { step: 0, label: String::new(), metadata: Default::default(), inputs: Vec::new(), deps }
    }

    /// Ready activities go largest raw inputs first, then in plan order; one put back goes
    /// behind those ready meanwhile.
    #[test]
    fn largest_raw_inputs_first_and_put_back_last() {
        let nodes = [node(vec![]), node(vec![]), node(vec![]), node(vec![]), node(vec![1])];
        let mut s = Schedule::new(&nodes, vec![10, 30, 20, 20, 99]);
        assert_eq!(s.next_ready(), Some(1));
        s.requeue(1);
        assert_eq!(s.next_ready(), Some(2));
        assert_eq!(s.next_ready(), Some(3));
        assert_eq!(s.next_ready(), Some(0));
        assert_eq!(s.next_ready(), Some(1));
        assert_eq!(s.next_ready(), None);
    }
}
