//! Keep exactly one active control plane across data centres.
//!
//! `survivable-core` is the site-aware layer around tikv's
//! [`raft`](https://docs.rs/raft/0.7) for services that need "one active
//! brain" across sites — a call controller, a scheduler, a payment switch, a
//! SCADA master. It follows the redundancy model of telephony control planes
//! (Avaya Aura Communication Manager):
//!
//! ```text
//!         Denver (main)                 Paris (survivable, rank 1)        Kansas
//!    +-------------------+  WAN 80 ms  +-------------------+          +---------+
//!    | CM01a  <-> CM01b  |-------------| CM02a  <-> CM02b  |----------| witness |
//!    | primary   standby |             |                   |          |  (W1)   |
//!    +-------------------+             +-------------------+          +---------+
//! ```
//!
//! - A **duplicated core** ([`topology::Core`]) in the main site: when the
//!   primary's host dies, the standby leads within milliseconds and nothing
//!   committed is lost.
//! - **Survivable cores** ([`topology::SurvivableCore`]) in backup sites,
//!   ranked: when the main site is lost or cut off for `survivable_after`,
//!   the highest-ranked reachable one takes over.
//! - A **witness** ([`topology::Witness`]) in a third site breaks ties; it
//!   leads only as a last resort and hands leadership on at once.
//! - **Hand-back**: once the main site is back, caught up and stable (per
//!   [`policy::HandBackPolicy`]), leadership returns to it; proposals in
//!   flight are queued and re-submitted, never failed.
//!
//! What it does not do: it is not a consensus implementation (raft-rs is);
//! the [`Node`] itself opens no sockets and starts no threads (it is
//! sans-IO: the [`runtime`] and [`transport`] modules, or your own loop,
//! do that); and it tolerates crashes and partitions, not members that lie.
//!
//! # Witness mode
//!
//! Every member of every core and every witness is a raft voter. A commit
//! needs a majority, and with the main site holding fewer than half of the
//! voters every majority spans two sites: no committed entry is ever lost
//! when a site is (RPO = 0), at the price of one WAN round trip per commit.
//! When the main site is lost or isolated, the survivable core plus the
//! witness still hold a majority and take over; an isolated old leader steps
//! down (check-quorum), so two leaders never commit in one term.
//!
//! # Main-site mode: two data centres
//!
//! With only two data centres there is no third site for a witness, and a
//! majority spanning both sites would stop at every WAN cut. In
//! [`policy::QuorumMode::MainSite`] (the paper's "rainy day";
//! [`topology::denver_paris_two_site`]) the main site holds the voting
//! majority — the duplicated pair plus a tie-breaker voter on a third host —
//! so a commit costs a LAN round trip; survivable cores replicate
//! asynchronously as raft learners. The price is honest and reported: losing
//! the whole main site loses at most what had not reached the survivable
//! core (the replication lag), and during a WAN cut both sides serve.
//!
//! - **Epochs.** Every history is an *epoch* ([`node::EpochId`]: a number
//!   and the member that founded it). Every envelope carries its sender's
//!   epoch; a node never steps another epoch's raft message, and a leader
//!   that meets a newer epoch stops taking proposals at once
//!   ([`Event::EpochFenced`]). `(epoch, term)` in
//!   [`node::Applied`] is the fencing token for downstream systems.
//! - **Activation.** A survivable core that has heard nothing from the main
//!   site for `survivable_after`, and reaches none of its members, founds a
//!   new epoch whose voters are its own members, seeded from the log it has
//!   ([`Event::Activated`] carries the fork point and the known RPO). Lower
//!   ranks activate only if the higher ranks are unreachable too.
//!   [`Node::activate`] lets an operator force it, and is refused while the
//!   main site answers ([`ActivateError::MainSiteReachable`]).
//! - **Reunion and reconciliation.** When the epochs meet, the older one's
//!   divergent committed entries (after the fork) go to
//!   [`StateMachine::reconcile`], which returns the commands to apply in the
//!   surviving epoch (default: all, in order); its members then rejoin from
//!   a snapshot. Every acknowledged entry of either side ends up applied in
//!   the final history or shown to the hook exactly once
//!   ([`Event::Reconciled`] says which ranges, by the epoch that appended
//!   them), also when epochs fork from epochs. A hook that fails or panics
//!   changes nothing and is retried ([`Event::ReconcileFailed`]).
//! - **Hand-back.** Once reunited, control returns to the main site under
//!   the same [`policy::HandBackPolicy`]: its members become voters again,
//!   the survivable core's learners, leadership moves home.
//!
//! In main-site mode no member compacts what a survivable learner has not
//! committed, so the divergent tail stays on disk until the reunion
//! (growing with the cut's length times the write rate) and the hook sees
//! every command; only an older epoch's entries a member had compacted for
//! another reason are counted ([`Reconciliation::compacted`]) without
//! their commands.
//!
//! # DR auto-sync mode: two data centres, RPO 0 while they talk
//!
//! [`policy::QuorumMode::DrAutoSync`] ([`topology::denver_paris_dr`]) keeps
//! main-site mode's layout but makes the survivable core's members voters,
//! so the main site alone is still a majority. While the sites talk, raft's
//! group commit holds every commit until a survivable member has it too
//! (one WAN round trip per commit): losing the main site then costs
//! nothing, and the survivable core takes over by itself with RPO 0
//! *proven* ([`Event::Activated`]'s `rpo_proven`). When the survivable site
//! is silent for [`policy::Timers::sync_wait`] the leader announces
//! `AsyncWait` to the main site's members, then commits at LAN cost
//! (`Async`) and counts what the survivable site lacks; when it is back it
//! is caught up (`SyncRecover`) and commits need both sites again (`Sync`).
//! Each move is a log record with a larger state id
//! ([`Event::ReplicationChanged`]), and every member reports the state and
//! what losing each site would cost now ([`node::Status::replication`]).
//! Activation, fencing, reconciliation and hand-back are main-site mode's.
//! [`replication`] explains the states, why group commit is the rule, and
//! the lease on which a survivable member's claim of RPO 0 rests.
//!
#![cfg_attr(
    feature = "sim",
    doc = r##"
# Quick start: a simulated cluster

The [`sim`] module runs real nodes on a virtual clock, deterministically
from a seed, with LAN and WAN latency, partitions and crashes:

```
use std::time::Duration;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{Appliance::Virtual, Core, Site, SurvivableCore, Topology, Witness};

let topology = Topology::builder(2026)
    .site(Site::main("denver"))
    .site(Site::backup("paris"))
    .site(Site::backup("kansas"))
    .core(Core::new("cm01", "denver")
        .member(1, "CM01a", "esxi-1", Virtual)
        .member(2, "CM01b", "esxi-3", Virtual))
    .survivable_core(SurvivableCore::new(1, Core::new("cm02", "paris")
        .member(3, "CM02a", "esxi-5", Virtual)
        .member(4, "CM02b", "esxi-7", Virtual)))
    .witness(Witness::new(5, "W1", "kansas", "wit-1"))
    .build()?
    .shared();
println!("{}", topology.survivability()); // who leads under each failure

let mut sim = Sim::builder(topology).seed(7).build(|_| KvStore::default());
sim.run_for(Duration::from_secs(1));
let leader = sim.leader().expect("elected");
sim.propose(leader, b"set call-1 up".to_vec())?;

// Denver is cut off: Paris takes over after `survivable_after` (2 s).
sim.partition_sites(&["denver"], &["paris", "kansas"]);
sim.run_for(Duration::from_secs(3));
assert_eq!(sim.site_of(sim.leader().unwrap()), "paris");

// The WAN heals: control goes back to Denver once stable (5 s by default).
sim.heal();
sim.run_for(Duration::from_secs(7));
assert_eq!(sim.site_of(sim.leader().unwrap()), "denver");
assert!(sim.violations().is_empty() && sim.check_converged().is_empty());
# Ok::<(), Box<dyn std::error::Error>>(())
```
"##
)]
//!
//! # The survivability report
//!
//! [`Topology::survivability`](topology::Topology::survivability) is the
//! first thing an operator reads: for every host, core and site failure and
//! every partition between sites, who leads afterwards, whether committed
//! data survives and how long the takeover takes with the configured timers
//! (for the paper's layout: pair failover 190 ms, Paris after a WAN cut
//! 2240 ms). Print it for a table.
#![cfg_attr(
    feature = "sim",
    doc = r##"
[`sim::Sim::inject`] plays any of its rows so a test can check the
prediction:

```
use std::time::Duration;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris, Failure};

let topology = denver_paris().build()?.shared();
let report = topology.survivability();
let cut = Failure::Partition { side_a: vec!["denver".into()], side_b: vec!["paris".into(), "kansas".into()] };
let row = report.scenario(&cut).expect("a row per partition");

let mut sim = Sim::builder(topology).seed(1).build(|_| KvStore::default());
sim.run_for(Duration::from_secs(1));
sim.inject(&cut);
sim.run_for(row.takeover.unwrap() + Duration::from_secs(1));
assert_eq!(sim.leader(), row.leader);
# Ok::<(), survivable_core::topology::TopologyError>(())
```
"##
)]
//!
#![cfg_attr(
    feature = "sim",
    doc = r##"
# Testing your own state machine

The simulator is public so services can test their own
[`StateMachine`] under failures: give [`sim::SimBuilder::build`] a
constructor for it, drive the cluster with [`sim::Sim::propose`], the
fault verbs (`crash`, `kill`, `restart`, `partition_sites`, `isolate`, `heal`, …)
and `run_for`, and read [`sim::Sim::violations`] and
[`sim::Sim::check_converged`]. A [`sim::Schedule`] is a whole fault
schedule on one printable, parseable line; the crate's own property test
generates thousands of them.
"##
)]
//!
//! # Driving a node
//!
//! A [`Node`] takes inputs and produces outputs; the caller owns threads,
//! sockets and clocks. Call [`Node::tick`] every [`policy::Timers::tick`]
//! with the wall clock, [`Node::step`] for every envelope received and
//! [`Node::propose`] and [`Node::read`] for commands and reads; after each
//! call, drain the four output queues in this order:
//! [`Node::poll_transmit`] (send these to `envelope.to`),
//! [`Node::poll_outcome`] (proposal results), [`Node::poll_read`] (read
//! points reached) and [`Node::poll_event`] (typed events). The
//! [`Node`] docs list every input, command, output and getter by group.
//!
//! ```
//! # use std::sync::Arc;
//! # // A stand-in for the simulator's `sim::KvStore`: the node needs only
//! # // the core.
//! # #[derive(Default)]
//! # struct KvStore;
//! # impl survivable_core::StateMachine for KvStore {
//! #     fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> { Vec::new() }
//! #     fn snapshot(&self) -> Vec<u8> { Vec::new() }
//! #     fn restore(&mut self, _: &[u8]) -> Result<(), survivable_core::RestoreError> { Ok(()) }
//! # }
//! # use survivable_core::storage::MemStorage;
//! # use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};
//! use survivable_core::{Node, NodeConfig};
//! # let topology: Arc<Topology> = Topology::builder(1)
//! #     .site(Site::main("denver"))
//! #     .core(Core::new("cm01", "denver").member(1, "a", "h1", Virtual).member(2, "b", "h2", Virtual))
//! #     .witness(Witness::new(3, "tb", "denver", "h3"))
//! #     .build().unwrap().shared();
//! let mut node = Node::new(NodeConfig::new(NodeId(1), topology), MemStorage::new(), KvStore::default())?;
//! let mut now_ms = 0;
//! for _ in 0..100 {
//!     now_ms += 5;
//!     node.tick(now_ms);
//!     while let Some(envelope) = node.poll_transmit() {
//!         let _bytes = envelope.to_bytes(); // send to envelope.to
//!     }
//!     while let Some(outcome) = node.poll_outcome() {
//!         println!("proposal {:?}: {:?}", outcome.id, outcome.result);
//!     }
//!     while let Some(read) = node.poll_read() {
//!         println!("read {read:?}");
//!     }
//!     while let Some(event) = node.poll_event() {
//!         println!("{event:?}");
//!     }
//! }
//! # Ok::<(), survivable_core::Fatal>(())
//! ```
//!
//! Everything the node writes to its storage is written before any message
//! that depends on it is handed out, as raft requires.
//!
//! # Who campaigns, and when
//!
//! raft itself never starts an election here; the driver decides, by role
//! (defaults in [`policy::Timers`]):
//!
//! | member | campaigns after | how |
//! | --- | --- | --- |
//! | standby of the leader's pair | `failover` (100 ms) of silence from its primary, once a quorum granted its probe (pre-votes with the transfer context, asked after 25 ms; they depose nobody) | transfer-style campaign: no pre-vote, remote vote leases bypassed — one WAN round trip after the probe's |
//! | main-core member | 1–1.5 election timeouts without a leader (primary first) | pre-vote |
//! | survivable core, rank `r` | `survivable_after + (r-1)·rank_step` without a leader (its standby one election timeout later) | pre-vote |
//! | witness | after every survivable rank had its chance | pre-vote; then hands leadership on |
//!
//! Raft priorities (main core 100, rank `r` 90−r, witness 0) make voters
//! refuse a less preferred candidate unless its log is longer; a node that
//! stays leaderless for long lowers its own priority so priority and log
//! length can never deadlock an election.
//!
//! # Proposals
//!
//! A proposal gets a [`node::ProposalId`] (node, boot, sequence) that travels
//! in the log entry. Followers forward proposals to the leader; with no
//! leader, or while a hand-back runs, they wait in a bounded queue. Every
//! waiting proposal is re-submitted when the leader changes, and every
//! member applies only the first copy of an id, so a proposal is applied at
//! most once and is never failed back because leadership moved. Its
//! [`node::Applied`] result carries the (index, term) fencing token.
//!
#![cfg_attr(
    feature = "runtime",
    doc = r##"
# Running over TCP

[`runtime::start_member`] runs one member for real: durable raft log
storage in its data directory ([`storage::DurableStorage`], on tikv's
raft-engine), mutual TLS over TCP to the other members
([`transport::TcpTransport`]: each member's certificate names it,
length-prefixed prost frames, one connection per peer, bounded queues;
the [`transport`] docs give the threat model), and a thread that owns
the node. The service keeps the [`runtime::Handle`]:
"##
)]
#![cfg_attr(
    all(feature = "runtime", feature = "sim"),
    doc = r##"

```no_run
use std::collections::BTreeMap;
use survivable_core::runtime::{start_member, MemberConfig};
use survivable_core::sim::KvStore;
use survivable_core::topology::{denver_paris, NodeId};
use survivable_core::transport::TransportSecurity;

let topology = denver_paris().build()?.shared();
let peers: BTreeMap<NodeId, std::net::SocketAddr> = (2..=5)
    .map(|id| (NodeId(id), format!("10.0.0.{id}:7000").parse().unwrap()))
    .collect();
// The cluster CA, and this member's key and certificate, whose subject
// alternative name is the URI survivable://2026/node/1.
let tls = TransportSecurity::mutual_tls(
    "/etc/survivable/ca.pem",
    "/etc/survivable/node-1.pem",
    "/etc/survivable/node-1.key",
);
let member = start_member(
    MemberConfig::new(
        topology,
        NodeId(1),
        "10.0.0.1:7000".parse()?,
        peers,
        "/var/lib/survivable/cm01a",
        tls,
    ),
    KvStore::default(),
    &slog::Logger::root(slog::Discard, slog::o!()),
)?;
let applied = member.handle.propose(b"set call-1 up".to_vec())?; // blocks until applied
println!("applied at {} in term {}", applied.index, applied.term);
// A linearizable read point: every write acknowledged before this call
// (anywhere) is in this member's state machine once it returns.
let read_point = member.handle.read(std::time::Duration::from_secs(1))?;
println!("state machine applied up to {read_point} or further");
for event in member.handle.events().try_iter() {
    println!("{event:?}");
}
println!("{:?}", member.handle.status());
member.handle.shutdown();
# Ok::<(), Box<dyn std::error::Error>>(())
```

`examples/node` runs a member from a TOML file, and starts the whole
Denver/Paris cluster as five processes (`node cluster`).
"##
)]
//!
//! # Errors
//!
//! Bad input never panics and never changes state: a bad topology is a
//! [`topology::TopologyError`] before anything starts; a refused envelope is
//! a [`StepError`] plus a counter ([`Node::counters`]); a refused proposal is
//! a [`ProposeError`]; a node that cannot start is [`Fatal`].
//!
//! # Features
//!
//! The sans-IO core — [`topology`], [`policy`], [`node`], [`wire`],
//! [`storage`] with [`storage::MemStorage`] and the [`storage::testing`]
//! conformance suite, [`StateMachine`], [`Event`] and the errors — needs no
//! feature: with `default-features = false` the crate is only the core, and
//! depends on neither a simulator, a TLS library nor a storage engine. The
//! features are on by default:
//!
//! - `sim`: the deterministic simulator ([`sim`]) and the fuzz targets'
//!   entry points; brings `arbitrary` and `quickcheck`.
//! - `runtime`: running members for real: [`runtime`], [`transport`] (TCP,
//!   mutual TLS with `rustls`) and [`storage::DurableStorage`] (tikv's
//!   `raft-engine`); brings those and `crossbeam-channel`. Also [`relay`],
//!   test and lab support: a fault-injecting TCP relay emulating a WAN on
//!   loopback.
//! - `operator`: the [`operator`] endpoint (health and routing checks,
//!   status, metrics and operator commands over HTTP, mutual TLS off
//!   loopback) with the small synchronous `tiny_http`; implies `runtime`.
//! - `timeline`: [`timeline`], an SVG picture of who led when (a lane per
//!   member coloured by role, faults, takeovers, hand-backs, write
//!   outages, calls active), from a simulator run with `sim`; brings the
//!   `svg` crate.
//! - `config` (needs `runtime`): a member's TOML file read into a
//!   [`runtime::MemberConfig`] and checked as a whole ([`config`]); brings
//!   `toml`.
//!
// Without a feature, links to what it gates lead to the list above.
#![cfg_attr(not(feature = "sim"), doc = "[`sim`]: crate#features")]
#![cfg_attr(not(feature = "runtime"), doc = "[`runtime`]: crate#features")]
#![cfg_attr(not(feature = "runtime"), doc = "[`transport`]: crate#features")]
#![cfg_attr(not(feature = "runtime"), doc = "[`relay`]: crate#features")]
#![cfg_attr(not(feature = "operator"), doc = "[`operator`]: crate#features")]
#![cfg_attr(not(feature = "timeline"), doc = "[`timeline`]: crate#features")]
#![cfg_attr(not(feature = "config"), doc = "[`config`]: crate#features")]
#![cfg_attr(
    not(feature = "runtime"),
    doc = "[`storage::DurableStorage`]: crate#features"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Docs of the core link to the simulator and the runtime; without them
// those links cannot resolve (every link is checked with the defaults).
#![cfg_attr(
    not(all(feature = "sim", feature = "runtime")),
    allow(rustdoc::broken_intra_doc_links)
)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;
pub mod error;
pub mod events;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod manual;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod node;
#[cfg(feature = "operator")]
#[cfg_attr(docsrs, doc(cfg(feature = "operator")))]
pub mod operator;
pub mod policy;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod relay;
pub mod replication;
mod rng;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod runtime;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod state_machine;
pub mod storage;
#[cfg(feature = "timeline")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeline")))]
pub mod timeline;
pub mod topology;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod transport;
pub mod wire;

pub use error::{
    ActivateError, DrainError, Fatal, HandBackError, MembershipError, ProposeError, QueryError,
    StepError, TransferError,
};
pub use events::{Event, LeadershipCause};
pub use node::{Node, NodeConfig};
pub use state_machine::{
    DivergentEntry, ReconcileError, Reconciliation, RestoreError, StateMachine,
};
