//! Input: checking a received envelope and stepping it into raft, or to
//! the control-message handler.

use raft::eraftpb::{Message, MessageType};

use super::Node;
use crate::error::StepError;
use crate::events::LeadershipCause;
use crate::ids::EpochId;
use crate::policy::QuorumMode;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;
use crate::wire::{Envelope, ProtocolRange, PROTOCOL_VERSION};

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// [`Node::step`]: checks the envelope, then hands it to the control
    /// handler or to raft.
    pub(super) fn take_envelope(&mut self, env: Envelope) -> Result<(), StepError> {
        if self.fatal.is_some() {
            return Ok(());
        }
        if let Err(e) = self.check_sender(&env) {
            self.counters.count(&e);
            slog::debug!(self.logger, "dropped envelope"; "reason" => %e);
            return Err(e);
        }
        if let Err(e) = self.check_epoch_claim(&env) {
            self.counters.count(&e);
            slog::debug!(self.logger, "dropped envelope"; "reason" => %e);
            return Err(e);
        }
        if !env.control.is_empty() {
            let done = self.handle_control(&env);
            if let Err(e) = &done {
                self.counters.count(e);
            }
            self.dirty = true;
            return done;
        }
        let theirs = env.epoch_id();
        if theirs != self.epoch() {
            let e = StepError::OtherEpoch {
                from: env.from,
                got: theirs,
                ours: self.epoch(),
            };
            self.counters.count(&e);
            self.meet_epoch(NodeId(env.from), theirs);
            self.dirty = true;
            return Err(e);
        }
        let msg = match self.raft_payload(&env) {
            Ok(m) => m,
            Err(e) => {
                self.counters.count(&e);
                return Err(e);
            }
        };
        if super::relay::is_relayed(&msg) {
            return self.take_relay(NodeId(env.from), msg);
        }
        if self.dr.prepared {
            // DR auto-sync: prepared to activate, this member acknowledges
            // nothing more in its epoch (its core partner relies on it).
            self.note_heard(NodeId(msg.from));
            return Ok(());
        }
        self.step_raft(msg)
    }

    /// In witness mode the epoch never changes: an envelope claiming
    /// another one is refused before it can fence anything.
    fn check_epoch_claim(&self, env: &Envelope) -> Result<(), StepError> {
        let got = env.epoch_id();
        if self.cfg.topology.mode() == QuorumMode::Witness && got != self.epoch() {
            return Err(StepError::EpochInWitnessMode {
                from: env.from,
                got,
            });
        }
        Ok(())
    }

    /// An envelope of epoch `theirs` came from `from`: meet it (a newer
    /// one fences this member until reunion), unless a claim of that epoch
    /// was already refuted (its fence lifted for want of a notice; see
    /// `expire_unconfirmed_fence`): then only ask the sender for its
    /// notice, which starts a real reunion if the epoch exists.
    pub(super) fn meet_epoch(&mut self, from: NodeId, theirs: EpochId) {
        if self.ep.newer.is_none() && self.ep.refuted.contains(&theirs) {
            self.send_notice(from);
            return;
        }
        let was_fenced = self.ep.fenced_by.is_some();
        self.met_other_epoch(from, theirs);
        if !was_fenced && self.ep.fenced_by.is_some() {
            self.ep.fenced_at = self.tick_no;
        }
    }

    /// Refuses a forwarded proposal that is not one or more commands:
    /// members forward only commands; raft would abort on an empty
    /// proposal, and a configuration change is the leader's alone.
    fn check_forwarded(&mut self, msg: &Message) -> Result<(), StepError> {
        let commands_only = !msg.entries.is_empty()
            && (msg.entries.iter())
                .all(|e| e.get_entry_type() == raft::eraftpb::EntryType::EntryNormal);
        if msg.get_msg_type() != MessageType::MsgPropose || commands_only {
            return Ok(());
        }
        let e = StepError::Refused {
            from: msg.from,
            reason: "a forwarded proposal must carry one or more command entries".into(),
        };
        self.counters.count(&e);
        Err(e)
    }

    /// Steps a raft message of this epoch from a checked envelope, noting
    /// what it says about the leader, its commit and this log's sync.
    fn step_raft(&mut self, msg: Message) -> Result<(), StepError> {
        let from = NodeId(msg.from);
        let kind = msg.get_msg_type();
        if self.fenced() && matches!(kind, MessageType::MsgPropose | MessageType::MsgReadIndex) {
            // A fenced epoch takes nothing new, from anyone.
            self.note_heard(from);
            return Ok(());
        }
        self.check_forwarded(&msg)?;
        let leader_commit = msg.commit;
        if kind == MessageType::MsgAppend && msg.from == self.raw.raft.leader_id {
            self.ep.leader_commit = self.ep.leader_commit.max(leader_commit);
        }
        if kind == MessageType::MsgTimeoutNow && self.drain.drained {
            // Drained: never takes leadership, not even handed over.
            self.note_heard(from);
            self.refuse_leadership(from);
            return Ok(());
        }
        if kind == MessageType::MsgTimeoutNow {
            self.election.pending_cause = Some(LeadershipCause::Transfer);
        }
        if kind == MessageType::MsgRequestPreVoteResponse
            && self.note_probe_answer(from, msg.term, msg.reject)
        {
            // A grant for this standby's failover probe: not raft's.
            self.note_heard(from);
            self.dirty = true;
            return Ok(());
        }
        if matches!(
            kind,
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        ) {
            self.note_vote_request(from, msg.log_term, msg.index);
        }
        // An append's term and last (index, term), to see whether our log
        // took it (the first append of a new term counts too).
        let pre_vote = (kind == MessageType::MsgRequestPreVote).then_some(super::relay::PreVote {
            from: msg.from,
            term: msg.term,
            index: msg.index,
            log_term: msg.log_term,
        });
        let append_tip = (kind == MessageType::MsgAppend).then(|| {
            let last = msg.entries.last();
            let tip = last.map_or((msg.index, msg.log_term), |e| (e.index, e.term));
            (msg.term, tip)
        });
        if let Err(e) = self.raw.step(msg) {
            if matches!(e, raft::Error::ProposalDropped) {
                // A forwarded proposal (or read) that raft dropped: a
                // leader transfer is under way, or there is no leader. Its
                // proposer re-submits it; nothing was wrong with it.
                self.counters.proposals_dropped += 1;
                self.note_heard(from);
                return Ok(());
            }
            let e = StepError::Refused {
                from: from.0,
                reason: e.to_string(),
            };
            self.counters.count(&e);
            return Err(e);
        }
        if let Some(v) = pre_vote {
            self.relay_tail(v);
        }
        self.note_contact(from, kind);
        self.note_serving(from, kind);
        if from.0 == self.raw.raft.leader_id
            && matches!(kind, MessageType::MsgAppend | MessageType::MsgHeartbeat)
        {
            // A heartbeat's commit is capped at what this member holds;
            // only an append reports the leader's own.
            let reported = (kind == MessageType::MsgAppend).then_some(leader_commit);
            self.note_leader_report(reported);
        }
        // Behind the leader's commit after taking its append or snapshot:
        // this member is catching up and must not rush into a failover.
        let catching_up = matches!(kind, MessageType::MsgAppend | MessageType::MsgSnapshot)
            && self.raw.raft.raft_log.last_index() < leader_commit;
        if catching_up {
            self.election.catching_up_at = Some(self.tick_no);
        }
        let log = &self.raw.raft.raft_log;
        if let Some((msg_term, (index, term))) = append_tip {
            if from.0 == self.raw.raft.leader_id
                && msg_term == self.raw.raft.term
                && log.match_term(index, term)
                && log.last_index() >= leader_commit
            {
                self.election.synced_term = self.raw.raft.term;
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Checks who sent an envelope (version, cluster, recipient, member).
    fn check_sender(&self, env: &Envelope) -> Result<(), StepError> {
        if !ProtocolRange::SUPPORTED.contains(env.version) {
            return Err(StepError::UnsupportedVersion {
                from: env.from,
                version: env.version,
                ours: PROTOCOL_VERSION,
            });
        }
        let expected = self.cfg.topology.cluster_id();
        if env.cluster_id != expected {
            return Err(StepError::WrongCluster {
                from: env.from,
                got: env.cluster_id,
                expected,
            });
        }
        if env.to != self.id.0 {
            return Err(StepError::WrongRecipient {
                to: env.to,
                me: self.id.0,
            });
        }
        if self.cfg.topology.is_removed(NodeId(env.from)) {
            return Err(StepError::RemovedSender { from: env.from });
        }
        if !self.membership.members.contains_key(&NodeId(env.from)) {
            return Err(StepError::UnknownSender { from: env.from });
        }
        Ok(())
    }

    /// The raft message inside an envelope of our epoch.
    fn raft_payload(&self, env: &Envelope) -> Result<Message, StepError> {
        let msg = env.raft_message()?;
        // A relayed append names the lost leader as its sender (`relay`).
        let relayed = super::relay::is_relayed(&msg);
        if (msg.from != env.from && !relayed) || msg.to != env.to {
            return Err(StepError::Spoofed {
                env_from: env.from,
                env_to: env.to,
                msg_from: msg.from,
                msg_to: msg.to,
            });
        }
        Ok(msg)
    }

    fn note_contact(&mut self, from: NodeId, kind: MessageType) {
        self.note_heard(from);
        let from_leader = matches!(
            kind,
            MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
        ) && self.raw.raft.leader_id == from.0;
        if from_leader {
            self.leader_contact();
        }
    }
}
