//! How a node is set up ([`NodeConfig`]) and how raft is configured under
//! it, and what of raft-rs's logging reaches the node's logger.
//!
//! # Logging
//! A node logs through [`NodeConfig::logger`] with the key `node` (the
//! member's id) added once: not again when the logger already carries it
//! (as a runtime member's does, for its transport's records too). raft-rs
//! logs through the same logger, filtered: its records at WARN and above
//! pass, and of its INFO records only those an operator needs (`became
//! leader/follower/candidate at term N`, leader transfers starting or
//! aborted, `restored snapshot`, `switched to
//! configuration`); its per-message chatter (`received a message with
//! higher term`, `starting a new election` at every campaign, vote
//! casting and counting, `[commit: ..]` fast-forwards,
//! conflicts found in the log) and its DEBUG and TRACE records are dropped.
//! The node's own records, and its events (at INFO), are not filtered.

use std::sync::Arc;

use slog::{o, Drain, Level, Logger, Never, OwnedKVList, Record};

use crate::policy::TickTimers;
use crate::topology::{Member, NodeId, Topology};

/// raft must never start an election on its own: the driver decides who
/// campaigns and when. Also keeps raft's internal RNG from mattering.
const NEVER: usize = 1 << 40;

/// raft's configuration for member `id` (raft never campaigns by itself:
/// the election timers are pushed out of reach; see `election`).
pub(super) fn raft_config(
    id: NodeId,
    ticks: &TickTimers,
    applied: u64,
    priority: i64,
) -> raft::Config {
    raft::Config {
        id: id.0,
        election_tick: ticks.election,
        heartbeat_tick: ticks.heartbeat,
        min_election_tick: NEVER,
        max_election_tick: NEVER + 1,
        applied,
        check_quorum: true,
        pre_vote: true,
        priority,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

/// The node's logger: `parent` with the `node` key (unless it already
/// carries one) and raft-rs's records filtered (see the module docs).
pub(super) fn node_logger(parent: &Logger, id: NodeId) -> Logger {
    let filtered = RaftFilter(parent.clone());
    if carries_key(parent, "node") {
        Logger::root(filtered, o!())
    } else {
        Logger::root(filtered, o!("node" => id.0))
    }
}

/// Whether `logger`'s own key-value pairs include `key`.
fn carries_key(logger: &Logger, key: &str) -> bool {
    struct Find<'a>(&'a str, bool);
    impl slog::Serializer for Find<'_> {
        fn emit_arguments(&mut self, key: slog::Key, _: &std::fmt::Arguments<'_>) -> slog::Result {
            self.1 |= key == self.0;
            Ok(())
        }
    }
    let mut find = Find(key, false);
    let _ = slog::KV::serialize(
        logger.list(),
        &slog::record!(Level::Info, "", &format_args!(""), slog::b!()),
        &mut find,
    );
    find.1
}

/// raft-rs's INFO records an operator needs: leadership, elections,
/// transfers, snapshots restored, configurations switched to.
///
/// Not `starting a new election`: raft-rs logs it at every campaign, and
/// with pre-vote a member cut off from the majority campaigns again and
/// again; the node's own events report a campaign once per leaderless
/// spell, and `became candidate` marks a pre-vote won.
const RAFT_INFO_KEPT: [&str; 7] = [
    "became leader at term",
    "became follower at term",
    "became candidate at term",
    "starts to transfer leadership to",
    "abort previous transferring leadership to",
    "and starts an election to transfer leadership",
    "switched to configuration",
];

/// Whether a raft-rs record is kept: WARN and above, and the INFO
/// records of [`RAFT_INFO_KEPT`] or exactly `restored snapshot` (not
/// its `[commit: ..]` twin). Only an INFO record's message is looked at,
/// and formatted only when it has arguments.
fn raft_record_kept(level: Level, msg: &std::fmt::Arguments<'_>) -> bool {
    if level.is_at_least(Level::Warning) {
        return true;
    }
    if level != Level::Info {
        return false;
    }
    let kept =
        |msg: &str| msg == "restored snapshot" || RAFT_INFO_KEPT.iter().any(|k| msg.contains(k));
    match msg.as_str() {
        Some(plain) => kept(plain),
        None => kept(&msg.to_string()),
    }
}

/// Passes the node's own records; raft-rs's only when
/// [`raft_record_kept`].
struct RaftFilter(Logger);

impl Drain for RaftFilter {
    type Ok = ();
    type Err = Never;

    fn log(&self, r: &Record<'_>, kv: &OwnedKVList) -> Result<(), Never> {
        if !self.0.is_enabled(r.level()) {
            // Discarded below whatever it says (the default logger):
            // nothing to format.
            return Ok(());
        }
        let m = r.module();
        let from_raft = m == "raft" || m.starts_with("raft::");
        if from_raft && !raft_record_kept(r.level(), r.msg()) {
            return Ok(());
        }
        Drain::log(&self.0, r, kv)
    }

    fn is_enabled(&self, level: Level) -> bool {
        self.0.is_enabled(level)
    }
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id.
    pub id: NodeId,
    /// The cluster's topology (identical at every member).
    pub topology: Arc<Topology>,
    /// Where logs go. Defaults to discarding them.
    pub logger: Logger,
    /// Seeds the node's jitter. Defaults to 0; give members different
    /// seeds (the id is mixed in anyway).
    pub seed: u64,
    /// For a member added after the cluster started (a replacement): its
    /// description. It starts empty and catches up from the leader.
    pub joining: Option<Member>,
    /// Whether a follower forwards proposals to the leader (and queues them
    /// while there is none) instead of refusing them with
    /// [`ProposeError::NotLeader`](crate::error::ProposeError::NotLeader). Defaults to `true`.
    pub forward_proposals: bool,
    /// Proposals allowed to wait at once. Defaults to 4096.
    pub max_pending: usize,
    /// Largest command accepted, in bytes. Defaults to 1 MiB.
    pub max_command_len: usize,
    /// Take a snapshot and compact the log every this many applied entries,
    /// once they also hold as many bytes as the last snapshot (so snapshot
    /// writes never outweigh log writes; a state larger than this many
    /// entries is snapshotted less often, and its log holds up to the
    /// state's size). Defaults to 1024.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot for followers that lag a little.
    /// Defaults to 256.
    pub keep_entries: u64,
    /// Main-site mode: the most log entries this member holds for
    /// survivable members that have not committed them (a long WAN cut;
    /// see the `retention` module docs of [`Node`](super::Node)).
    /// Defaults to `None`: keep everything, however long the cut.
    pub retain_max_entries: Option<u64>,
    /// The same bound in bytes of entries held. Defaults to `None`.
    pub retain_max_bytes: Option<u64>,
    /// Percent of a retention bound at which
    /// [`Event::RetentionWarning`](crate::Event::RetentionWarning) fires,
    /// well before anything is dropped. Defaults to 80.
    pub retain_warn_percent: u8,
    /// The leader's automatic replacement of a silent core member by a
    /// spare ([`ReplacePolicy`](super::ReplacePolicy)). Defaults to `None`:
    /// off, members are replaced only by [`Node::replace_member`](super::Node::replace_member).
    pub replace: Option<super::ReplacePolicy>,
    /// The protocol versions the member speaks (its transport's). Below
    /// version 3 the node writes no compaction floor records in the log:
    /// a version 2 build would apply one as a command of the
    /// application's (see [`wire::version`](crate::wire::version)), so a
    /// member pinned to 2 leaves nothing in its log that the version 2
    /// build cannot replay. Defaults to every version this build speaks.
    pub protocol: crate::wire::ProtocolRange,
}

impl NodeConfig {
    /// A configuration for member `id` of `topology` with the defaults.
    pub fn new(id: NodeId, topology: Arc<Topology>) -> Self {
        Self {
            id,
            topology,
            logger: Logger::root(slog::Discard, o!()),
            seed: 0,
            joining: None,
            forward_proposals: true,
            max_pending: 4096,
            max_command_len: 1 << 20,
            snapshot_every: 1024,
            keep_entries: 256,
            retain_max_entries: None,
            retain_max_bytes: None,
            retain_warn_percent: 80,
            replace: None,
            protocol: crate::wire::ProtocolRange::SUPPORTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps every record as `LEVEL message k=v ...` (own pairs, then the
    /// logger's).
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Line(String);
    impl slog::Serializer for Line {
        fn emit_arguments(
            &mut self,
            key: slog::Key,
            val: &std::fmt::Arguments<'_>,
        ) -> slog::Result {
            self.0.push_str(&format!(" {key}={val}"));
            Ok(())
        }
    }

    impl Drain for Capture {
        type Ok = ();
        type Err = Never;
        fn log(&self, r: &Record<'_>, kv: &OwnedKVList) -> Result<(), Never> {
            let mut line = Line(format!("{} {}", r.level().as_short_str(), r.msg()));
            let _ = slog::KV::serialize(&r.kv(), r, &mut line);
            let _ = slog::KV::serialize(kv, r, &mut line);
            self.0.lock().unwrap().push(line.0);
            Ok(())
        }
    }

    fn lines(c: &Capture) -> Vec<String> {
        std::mem::take(&mut *c.0.lock().unwrap())
    }

    /// A real raft-rs node logging through the filter: its start-up and
    /// per-message INFO chatter is dropped, becoming leader passes, and
    /// the node's own records pass; `node` appears once per record
    /// whether or not the parent logger already carries it.
    #[test]
    fn raft_chatter_is_filtered_and_node_appears_once() {
        let capture = Capture::default();
        let bare = Logger::root(capture.clone(), o!());
        let keyed = bare.new(o!("node" => 1u64));
        for parent in [bare, keyed] {
            let logger = node_logger(&parent, NodeId(1));
            let storage = raft::storage::MemStorage::new_with_conf_state((vec![1], vec![]));
            let cfg = raft::Config {
                id: 1,
                ..Default::default()
            };
            let mut raw = raft::RawNode::new(&cfg, storage, &logger).unwrap();
            raw.campaign().unwrap();
            slog::info!(logger, "our own record");
            slog::debug!(logger, "our own debug record");
            let got = lines(&capture);
            let msgs: Vec<&str> = got
                .iter()
                .map(|l| l.split(" node=").next().unwrap())
                .collect();
            assert!(
                got.iter()
                    .any(|l| l.starts_with("INFO became leader at term 1")),
                "{got:#?}"
            );
            assert!(
                got.iter()
                    .any(|l| l.starts_with("INFO became candidate at term 1")),
                "{got:#?}"
            );
            assert!(msgs.contains(&"INFO our own record"), "{got:#?}");
            assert!(msgs.contains(&"DEBG our own debug record"), "{got:#?}");
            // raft-rs logs these at INFO on every start.
            for chatter in ["RawNode created", "newRaft", "starting a new election"] {
                assert!(
                    !got.iter().any(|l| l.contains(chatter)),
                    "{chatter}: {got:#?}"
                );
            }
            for l in &got {
                assert_eq!(l.matches(" node=").count(), 1, "{l}");
            }
        }
    }

    #[test]
    fn the_filter_keeps_what_an_operator_needs() {
        let kept = [
            (Level::Info, "became leader at term 4"),
            (Level::Info, "[term 3] starts to transfer leadership to 1"),
            (Level::Info, "restored snapshot"),
            (Level::Warning, "anything at all"),
            (Level::Error, "anything at all"),
        ];
        let dropped = [
            (Level::Info, "received a message with higher term from 2"),
            (Level::Info, "[commit: 5, lastindex: 5, lastterm: 2] fast-forwarded commit to vote request [index: 6, term: 2]"),
            (Level::Info, "[commit: 5, term: 2] restored snapshot [index: 9, term: 2]"),
            (Level::Info, "broadcasting vote request"),
            (Level::Info, "starting a new election"),
            (Level::Info, "became pre-candidate at term 3"),
            (Level::Debug, "became leader at term 4"),
        ];
        for (level, msg) in kept {
            assert!(
                raft_record_kept(level, &format_args!("{msg}")),
                "{level:?} {msg}"
            );
        }
        for (level, msg) in dropped {
            assert!(
                !raft_record_kept(level, &format_args!("{msg}")),
                "{level:?} {msg}"
            );
        }
        // A message without arguments is read as it is, unformatted.
        assert!(raft_record_kept(
            Level::Info,
            &format_args!("restored snapshot")
        ));
        assert!(!raft_record_kept(
            Level::Info,
            &format_args!("broadcasting vote request")
        ));
    }
}
