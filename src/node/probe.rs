//! The pair standby's failover probe: before it deposes a silent primary
//! it asks the voters whether it could win (see [`FailoverProbe`]); when
//! it is sent, and when the campaign follows, is `election`'s decision.
//!
//! # A leader's process gone: failover without waiting out the timer
//!
//! The failover time is a guess: silence cannot tell a dead primary from
//! a stalled one, so the standby waits long enough to sit out stalls
//! (100 ms at the defaults). A process that died leaves a better sign on
//! a host that is still up: its kernel closes its sockets, so this
//! member's connections with it end, and a new connection to its address
//! is *refused* (a TCP reset to the SYN: nothing listens there; or reset
//! from the listener's backlog as it closes). The
//! runtime reports exactly that, and nothing weaker, through
//! [`Node::peer_connection_refused`]: a connection with the peer ended
//! from its side (the one it opened to this member, or the one this
//! member opened to it) and a dial to its address was then refused.
//!
//! What the report proves: at the time of the dial, no process listened
//! at the leader's address, after every message this member had taken
//! from it (the runtime steps what arrived before it passes the report
//! on; a report from this member's own connection to the leader can
//! still come before the leader's last message, still on its way on the
//! other connection: that message then clears the report, as any message
//! from the leader does, which only ever delays the failover). A member's
//! listener lives as long as its process (it closes only when the member
//! stops, and a stopping leader hands its leadership on first), so the
//! leader that was followed is gone; if it comes back, it comes back as a
//! follower. What it does not prove: anything when the
//! dial *succeeds* (a connection reset by the network, a flapping link, a
//! proxy or relay in the path that answers for the member, a process
//! restarted fast enough): then nothing is reported and the failover
//! timer applies unchanged. Nor does any sign come from a host that went
//! away, a cut cable or a half-open connection on a WAN (no reset ever
//! arrives, and a dial times out): the timer again. A refusal that does
//! not mean death (a firewall rejecting this member's dials while the
//! leader lives) is guarded against by still asking for silence: the
//! standby acts only once the leader has also been silent here for more
//! than a heartbeat interval ([`gone_failover_after`](super::election::gone_failover_after)), which a live
//! leader that reaches this member never is.
//!
//! What the report changes, and only for the standby of the leader's own
//! pair, following that leader, with the report newer than the leader's
//! last message (a message from the leader, or a new leader, clears it):
//!
//! - the failover probe (pre-votes, deposing nobody) starts at once
//!   instead of after two missed heartbeats;
//! - the campaign follows once the probe is won and the leader has been
//!   silent for [`gone_failover_after`](super::election::gone_failover_after), instead of the failover time;
//! - the recent-catch-up caution is waived (it guards a live leader
//!   against a hopeless campaign; this one is gone). A log behind the
//!   leader's commit still declines, and the probe still asks a quorum,
//!   so a standby that cannot win still does not try.
//!
//! Nothing else listens to the report: load, a slow leader or a flapping
//! connection produce no refusal, so they change leadership no sooner
//! than before.
//!
//! # A refused probe and the dying leader's last append
//!
//! A leader sends each append to its followers one after the other (and,
//! with the early send, before its own write). Killed in between, it
//! leaves the other voters holding an entry or a few that its standby
//! lacks; on a loaded host this happened in about one kill in ten. The
//! voters then refuse the standby's probe (raft's vote rule: its log is
//! behind theirs), so it cannot win, and the fast failover used to end
//! there: the silence went to an ordinary election one to two election
//! timeouts later (250–380 ms measured at the default timers).
//!
//! But each refusing voter also sends the missing tail right after its
//! refusal, as the lost leader's own append (see
//! [`relay`](super::relay), whose safety argument applies unchanged: an
//! entry of the followed leader's term is that leader's, and so is the
//! log up to it). The standby takes it while its probe is out, when
//! raft's follower of that same leader in that same term
//! ([`probe_takes_relay`]): for raft it is a late copy of the leader's
//! append, taken by the usual consistency check. Then it probes again at
//! once, asking with its longer log. Nothing else changes: the probe
//! deposes nobody; the campaign still needs a quorum of grants and the
//! silence the failover asks for; the votes are raft's, granted only to a
//! log at least as up to date as the voter's, so two leaders in one term
//! or a committed entry lost are ruled out as in any raft election. A
//! relay never counts as contact with the leader, so the silence and the
//! ordinary election behind it run on unchanged if the new probe is
//! refused too.
//!
//! Only once the leader is reported gone: a standby that is behind a
//! leader it merely cannot hear (a stall, a one-way cut) still leaves it
//! alone, as before, so load alone changes no leadership sooner.

use raft::eraftpb::{Message, MessageType};
use raft::StateRole;

use super::election::Election;
use super::{Node, NodeId};
use crate::events::{Event, LeadershipCause};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;

/// The pair standby's proof, before it deposes its primary, that it can
/// win: pre-votes for the next term, asked of every voter with raft's
/// transfer context. The context makes followers inside their vote lease
/// (they heard the primary a moment ago) answer instead of ignoring it; a
/// pre-vote changes nobody's term, so asking deposes nobody, not even the
/// primary if it is alive and merely slow. A voter grants it only if this
/// log is at least as up to date as its own (raft's vote rule): once a
/// quorum has granted, the transfer-style campaign that follows wins the
/// same votes; if a quorum refuses, this standby could not win and leaves
/// the primary alone (an ordinary election handles a real death).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FailoverProbe {
    /// The term asked for (the current one plus one).
    pub(super) term: u64,
    /// The silent primary.
    pub(super) primary: NodeId,
    /// Voters that granted (this member included).
    pub(super) granted: Vec<u64>,
    /// Voters that refused.
    pub(super) refused: Vec<u64>,
    /// A quorum granted: campaign once the primary has been silent for
    /// the failover time.
    pub(super) won: bool,
}

/// Why the pair standby, its failover probe sent in this silence of its
/// primary, refuses a relayed append (see [`relay`](super::relay)), or
/// `None` to take it: only as raft's follower, in the relay's term, of the
/// leader the relay names, that leader reported gone, with no fast
/// failover run yet in this term, and only a relay from a voter, of the
/// relay's shape ([`relay_shape`](super::relay::relay_shape)).
pub(super) fn probe_takes_relay(
    e: &Election,
    role: StateRole,
    term: u64,
    relayer_votes: bool,
    msg: &Message,
) -> Option<&'static str> {
    if !e.probed || role != StateRole::Follower || e.fast_failover_term == term {
        return Some("a relayed append outside a failover probe");
    }
    if e.leader != Some(NodeId(msg.from)) {
        return Some("a relayed append naming another leader than the one followed");
    }
    if e.gone != e.leader {
        // Only for a leader reported gone: a standby merely behind a live
        // leader it cannot hear (load, a one-way cut) leaves it alone.
        return Some("a relayed append while the leader is not reported gone");
    }
    if !relayer_votes {
        return Some("a relayed append from a member that does not vote");
    }
    if msg.term != term {
        return Some("a relayed append of another term than the one followed");
    }
    super::relay::relay_shape(msg)
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Asks every voter for a pre-vote for the next term (see
    /// [`FailoverProbe`]); the campaign follows once a quorum granted.
    pub(super) fn start_failover_probe(&mut self, primary: NodeId, term: u64) {
        self.election.probed = true;
        let log = &self.raw.raft.raft_log;
        let (index, log_term) = (log.last_index(), log.last_term());
        let priority = self.raw.raft.priority;
        let voters: Vec<NodeId> = self.membership.voter_ids().collect();
        let (cluster, epoch) = (self.cfg.topology.cluster_id(), self.epoch());
        for to in voters.into_iter().filter(|&v| v != self.id) {
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgRequestPreVote);
            m.from = self.id.0;
            m.to = to.0;
            m.term = term + 1;
            m.index = index;
            m.log_term = log_term;
            m.priority = priority;
            m.context = raft::CAMPAIGN_TRANSFER.to_vec().into();
            self.outbox
                .push_back(crate::wire::Envelope::wrap(cluster, epoch, &m));
        }
        slog::info!(self.logger, "primary silent: asking the voters whether this standby can win";
            "primary" => primary.0, "silent_ms" => self.ticks.ms(self.election.since_leader));
        self.election.probe = Some(FailoverProbe {
            term: term + 1,
            primary,
            granted: vec![self.id.0],
            refused: Vec::new(),
            won: false,
        });
        self.conclude_failover_probe();
    }

    /// Whether this standby, probing its silent primary, takes the relayed
    /// append `msg` from `relayer` ([`probe_takes_relay`]; never while DR
    /// activation is prepared).
    pub(super) fn probe_relay_due(&self, relayer: NodeId, msg: &Message) -> bool {
        !self.dr.prepared
            && probe_takes_relay(
                &self.election,
                self.raw.raft.state,
                self.raw.raft.term,
                self.is_in_conf(relayer),
                msg,
            )
            .is_none()
    }

    /// Takes a relayed append from `relayer` that [`Node::probe_relay_due`]
    /// allowed, then starts the probe again with the longer log (see the
    /// module docs, "A refused probe and the dying leader's last append").
    pub(super) fn take_probe_relay(&mut self, relayer: NodeId, msg: Message) {
        self.note_heard(relayer);
        let last_before = self.raw.raft.raft_log.last_index();
        // An append of the followed leader in its own term, as raft's
        // follower of it: raft appends it as if it came late from the
        // leader (the relay bypasses `note_contact`: the silence goes on).
        self.append_relayed(msg);
        slog::info!(self.logger, "took the silent primary's log tail from a voter: probing again";
            "relayer" => relayer.0, "from_index" => last_before,
            "to_index" => self.raw.raft.raft_log.last_index());
        // Every relay follows its sender's refusal of the probe under way:
        // a fresh probe lets that voter's next answer count.
        self.election.probe = None;
        self.election.probed = false;
        self.try_pair_failover();
        self.dirty = true;
    }

    /// A pre-vote answer from `from` for term `term`: counted when it
    /// answers the probe under way. Returns whether it did (raft need not
    /// see it then).
    pub(super) fn note_probe_answer(&mut self, from: NodeId, term: u64, reject: bool) -> bool {
        let Some(p) = self.election.probe.as_mut() else {
            return false;
        };
        if reject {
            if !p.refused.contains(&from.0) {
                p.refused.push(from.0);
            }
        } else if term == p.term {
            if !p.granted.contains(&from.0) {
                p.granted.push(from.0);
            }
        } else {
            return false;
        }
        self.conclude_failover_probe();
        !reject
    }

    /// Starts the campaign once a quorum granted the probe and the primary
    /// has been silent for the failover time; drops the probe once a
    /// quorum refused it, or when it no longer applies (a new term, this
    /// member no longer a follower). Whether the campaign started.
    pub(super) fn conclude_failover_probe(&mut self) -> bool {
        let Some(p) = self.election.probe.clone() else {
            return false;
        };
        let term = self.raw.raft.term;
        if p.term != term + 1 || self.election.role != StateRole::Follower {
            self.election.probe = None;
            return false;
        }
        let mut granted = std::collections::HashSet::with_hasher(Default::default());
        granted.extend(p.granted.iter().copied());
        if !self.raw.raft.prs().has_quorum(&granted) {
            let conf = &self.membership.conf;
            let mut possible = std::collections::HashSet::with_hasher(Default::default());
            possible.extend(
                conf.voters
                    .iter()
                    .chain(&conf.voters_outgoing)
                    .filter(|v| !p.refused.contains(v))
                    .copied(),
            );
            if !self.raw.raft.prs().has_quorum(&possible) {
                slog::info!(self.logger, "primary silent but this standby cannot win (a quorum holds a newer log): no fast failover";
                    "primary" => p.primary.0, "refused_by" => ?p.refused);
                self.election.probe = None;
                self.counters.campaigns_suppressed += 1;
            }
            return false;
        }
        if self.election.since_leader < self.election.failover_after(p.primary, &self.ticks) {
            if let Some(p) = self.election.probe.as_mut() {
                p.won = true;
            }
            return false;
        }
        self.election.probe = None;
        let leader = p.primary;
        self.election.fast_failover_term = term;
        self.emit(Event::FailoverStarted {
            primary: leader,
            silent_ms: self.ticks.ms(self.election.since_leader),
        });
        self.election.pending_cause = Some(LeadershipCause::PairFailover { from: leader });
        // A MsgTimeoutNow "from" the silent leader makes raft run a
        // transfer campaign: no pre-vote, and remote followers still inside
        // their vote lease answer it. Votes are still granted only to an
        // up-to-date log, so safety is raft's as usual.
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgTimeoutNow);
        m.from = leader.0;
        m.to = self.id.0;
        m.term = term;
        let _ = self.raw.step(m);
        true
    }
}
