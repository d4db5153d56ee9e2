//! Playing a schedule under a register workload and checking the history
//! for linearizability: clients write unique values and read keys through
//! raft's read index, at random members, while the faults happen.

use std::sync::Arc;
use std::time::Duration;

use super::run::{apply, recover_all};
use super::{Fault, Schedule, ScheduleError};
use crate::node::{ProposalId, ReadId};
use crate::rng::SplitMix64;
use crate::sim::linearizability::{CheckError, History, Op, OpId, OpResult, Report};
use crate::sim::{micros, KvStore, Sim};
use crate::topology::{NodeId, Topology};

/// How [`Schedule::run_linearizable`] drives the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearOptions {
    /// Concurrent clients, each with one operation outstanding at a time.
    /// Defaults to 5.
    pub clients: usize,
    /// Registers (keys) they share. Defaults to 3.
    pub keys: usize,
    /// An operation with no answer for this long counts as having an
    /// unknown outcome. Defaults to 2 s.
    pub op_timeout: Duration,
    /// Pause between a client's operations. Defaults to 10 ms.
    pub think: Duration,
    /// After the clients finish, the main site must lead again within
    /// this bound ([`Sim::check_main_site_leads`]). Defaults to 15 s.
    pub main_site_within: Duration,
}

impl Default for LinearOptions {
    fn default() -> Self {
        Self {
            clients: 5,
            keys: 3,
            op_timeout: Duration::from_secs(2),
            think: Duration::from_millis(10),
            main_site_within: Duration::from_secs(15),
        }
    }
}

/// What a linearizability run found.
#[derive(Debug, Clone)]
pub struct LinearReport {
    /// The checker's verdict on the recorded history.
    pub verdict: Result<Report, CheckError>,
    /// What the [invariant checker](crate::sim::invariants) found in the same
    /// run ([`manual::invariants`](crate::manual::invariants)): safety
    /// throughout, then, once the clients are done, leadership back at the main
    /// site, convergence and no acknowledged write lost.
    pub violations: Vec<crate::sim::Violation>,
    /// Operations recorded.
    pub operations: usize,
    /// Of those, completed with a known result.
    pub completed: usize,
    /// The simulator's trace.
    pub trace: Vec<String>,
}

enum Waiting {
    Write(ProposalId),
    Read(ReadId, String),
}

struct Client {
    next_at: u64,
    op: Option<(OpId, NodeId, Waiting, u64)>,
    count: u64,
}

struct Workload {
    clients: Vec<Client>,
    history: History,
    rng: SplitMix64,
    seen_commits: usize,
    seen_reads: usize,
    completed: usize,
    opts: LinearOptions,
}

impl Workload {
    fn invoke(&mut self, sim: &mut Sim<KvStore>, c: usize) {
        let live: Vec<NodeId> = sim
            .members()
            .into_iter()
            .filter(|&id| sim.node(id).is_some_and(|n| n.voters().contains(&id)))
            .collect();
        if live.is_empty() {
            return;
        }
        let at = live[self.rng.below(live.len() as u64) as usize];
        let key = format!("k{}", self.rng.below(self.opts.keys.max(1) as u64));
        let now = sim.now_us();
        let client = &mut self.clients[c];
        client.count += 1;
        if self.rng.below(2) == 0 {
            let value = format!("c{c}-{}", client.count);
            let cmd = format!("set {key} {value}");
            if let Ok(pid) = sim.propose(at, cmd.into_bytes()) {
                let op = self.history.invoke(c as u64, Op::Write { key, value }, now);
                self.clients[c].op = Some((op, at, Waiting::Write(pid), now));
            }
        } else if let Ok(rid) = sim.read(at) {
            let op = self
                .history
                .invoke(c as u64, Op::Read { key: key.clone() }, now);
            self.clients[c].op = Some((op, at, Waiting::Read(rid, key), now));
        }
    }

    fn finish(&mut self, c: usize, result: Option<OpResult>, now: u64) {
        if let Some((op, ..)) = self.clients[c].op.take() {
            match result {
                Some(r) => {
                    self.history.complete(op, r, now);
                    self.completed += 1;
                }
                None => self.history.fail(op, now),
            }
        }
        let think = micros(self.opts.think);
        self.clients[c].next_at = now
            .saturating_add(think)
            .saturating_add(self.rng.below(think.saturating_add(1)));
    }

    /// Collects answers and timeouts, then starts new operations if `issue`.
    fn poll(&mut self, sim: &mut Sim<KvStore>, issue: bool) {
        let now = sim.now_us();
        let commits = sim.commits()[self.seen_commits..].to_vec();
        self.seen_commits = sim.commits().len();
        for done in commits {
            let c = self.clients.iter().position(
                |cl| matches!(&cl.op, Some((_, _, Waiting::Write(p), _)) if *p == done.id),
            );
            if let (Some(c), Ok(_)) = (c, &done.outcome.result) {
                self.finish(c, Some(OpResult::Written), now);
            }
        }
        let reads = sim.reads()[self.seen_reads..].to_vec();
        self.seen_reads = sim.reads().len();
        for done in reads {
            let Some(c) = self.clients.iter().position(
                |cl| matches!(&cl.op, Some((_, _, Waiting::Read(r, _), _)) if *r == done.id),
            ) else {
                continue;
            };
            let Some((_, at, Waiting::Read(_, key), _)) = &self.clients[c].op else {
                continue;
            };
            let value = sim
                .node(*at)
                .map(|n| n.state_machine().map.get(key.as_str()).cloned());
            match value {
                Some(v) => self.finish(c, Some(OpResult::Read(v)), now),
                None => self.finish(c, None, now),
            }
        }
        let timeout = micros(self.opts.op_timeout);
        for c in 0..self.clients.len() {
            let expired = self.clients[c]
                .op
                .as_ref()
                .is_some_and(|(_, _, _, started)| now.saturating_sub(*started) >= timeout);
            if expired {
                self.finish(c, None, now);
            }
            let idle = self.clients[c].op.is_none() && self.clients[c].next_at <= now;
            if issue && idle {
                self.invoke(sim, c);
            }
        }
    }

    fn run(&mut self, sim: &mut Sim<KvStore>, d: Duration, issue: bool) {
        let end = sim.now_us().saturating_add(micros(d));
        while sim.now_us() < end {
            self.poll(sim, issue);
            let left = Duration::from_micros(end - sim.now_us());
            sim.run_for(Duration::from_millis(1).min(left));
        }
        self.poll(sim, issue);
    }
}

impl Schedule {
    /// Plays the schedule against `topology` while clients write and read
    /// registers, records every invocation and completion, heals everything
    /// at the end, lets the clients finish, and checks the history for
    /// linearizability ([`crate::sim::linearizability`]); the run is also
    /// checked by the [invariant checker](crate::sim::invariants), as
    /// [`Schedule::run`] checks it ([`LinearReport::violations`]).
    ///
    /// # Errors
    /// [`ScheduleError`] when the schedule does not
    /// [validate](Schedule::validate) against the topology; nothing is run.
    pub fn run_linearizable(
        &self,
        topology: Arc<Topology>,
        opts: &LinearOptions,
    ) -> Result<LinearReport, ScheduleError> {
        self.validate(&topology)?;
        let mut sim = Sim::builder(topology)
            .seed(self.seed)
            .build(|_| KvStore::default());
        let mut w = Workload {
            clients: (0..opts.clients.max(1))
                .map(|_| Client {
                    next_at: 0,
                    op: None,
                    count: 0,
                })
                .collect(),
            history: History::new(),
            rng: SplitMix64::new(self.seed ^ 0x6c69_6e65_6172),
            seen_commits: 0,
            seen_reads: 0,
            completed: 0,
            opts: opts.clone(),
        };
        for step in &self.steps {
            w.run(&mut sim, Duration::from_millis(step.after_ms), true);
            if !matches!(step.fault, Fault::Rate(_)) {
                apply(&mut sim, &step.fault);
            }
        }
        recover_all(&mut sim);
        w.run(&mut sim, Duration::from_secs(2), true);
        w.run(
            &mut sim,
            opts.op_timeout + Duration::from_millis(100),
            false,
        );
        sim.check_main_site_leads(opts.main_site_within);
        sim.run_until_converged(Duration::from_secs(30));
        sim.check_converged();
        Ok(LinearReport {
            verdict: w.history.check(),
            violations: sim.violations(),
            operations: w.history.len(),
            completed: w.completed,
            trace: sim.trace().to_vec(),
        })
    }
}
