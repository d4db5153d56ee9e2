//! The transport's peers follow the replicated topology and the raft
//! configuration, so a member added, removed or moved at runtime is
//! reached (and accepted, or refused) without restarting the others.
//!
//! After every pass the runtime computes the peers ([`peer_map`]) and,
//! when they changed, hands them to the transport
//! ([`Transport::set_peers`](crate::transport::Transport::set_peers)):
//!
//! - the configured `peers` (what the transport started with) are the
//!   base;
//! - a member of the topology whose address there is an `ip:port` is
//!   reached there, whatever `peers` says (`TopologyChange::SetAddress`,
//!   or the address a member added at runtime was given). Addresses are
//!   not resolved: a host name in the topology is not used, and the
//!   configured address (if any) stays;
//! - a member of the raft configuration that neither the topology nor
//!   `peers` gives an `ip:port` is reached at the address it was given
//!   when it was added ([`Node::replace_member_at`](crate::Node::replace_member_at)):
//!   a replacement learner is dialled as soon as its change applies, and
//!   its promotion then writes that address into the topology;
//! - a configured peer that is neither in the topology nor in the raft
//!   configuration is dropped once the topology has changed (version
//!   above 0): it was removed. At version 0 the configured peers stand
//!   as they are (a replacement joining is listed there before raft
//!   knows it).
//!
//! A member without any address (added by the topology without one, and
//! not configured) cannot be dialled; it is left out and logged.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::Loop;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{NodeId, Topology};
use crate::transport::Transport;

/// What the runtime keeps to follow the peers.
#[derive(Debug, Default)]
pub(super) struct Following {
    /// The transport's configured peers (`None`: it has no addresses).
    pub(super) configured: Option<BTreeMap<NodeId, SocketAddr>>,
    /// What it was last given.
    pub(super) given: BTreeMap<NodeId, SocketAddr>,
}

impl<M: StateMachine + 'static, S: LogStore, T: Transport> Loop<M, S, T> {
    /// Gives the transport the peers the topology and the configuration
    /// call for, when they changed (before anything is sent to them).
    pub(super) fn follow_peers(&mut self) {
        let Some(configured) = &self.peers.configured else {
            return;
        };
        let node = &self.node;
        let conf: BTreeSet<NodeId> = (node.voters().into_iter())
            .chain(node.outgoing_voters())
            .chain(node.learners())
            .collect();
        let carried: BTreeMap<NodeId, String> = (conf.iter())
            .filter_map(|&id| Some((id, node.member_address(id)?.to_string())))
            .collect();
        let (peers, missing) = peer_map(node.id(), configured, node.topology(), &conf, &carried);
        if peers == self.peers.given {
            return;
        }
        if !missing.is_empty() {
            slog::warn!(self.logger, "members without an ip:port address anywhere (topology or peers) cannot be reached: give them one (TopologyChange::SetAddress)";
                "members" => ?missing);
        }
        slog::info!(self.logger, "peers follow the topology";
            "version" => node.topology().version(), "peers" => ?peers);
        for refused in self.transport.lock().set_peers(peers.clone()) {
            slog::warn!(self.logger, "peer address refused"; "reason" => %refused);
        }
        self.peers.given = peers;
    }
}

/// The peers a member `me` talks to: see the [module docs](self).
/// `conf` is the raft configuration's members (voters, outgoing voters
/// and learners), `carried` the addresses its members were given when
/// added (used only where neither the topology nor `peers` has one). The
/// second value lists the members left out for want of an address.
pub(crate) fn peer_map(
    me: NodeId,
    configured: &BTreeMap<NodeId, SocketAddr>,
    topology: &Topology,
    conf: &BTreeSet<NodeId>,
    carried: &BTreeMap<NodeId, String>,
) -> (BTreeMap<NodeId, SocketAddr>, Vec<NodeId>) {
    let member = |id: &NodeId| topology.member(*id).is_some() || conf.contains(id);
    let mut peers: BTreeMap<NodeId, SocketAddr> = configured
        .iter()
        .filter(|(id, _)| topology.version() == 0 || member(id))
        .map(|(&id, &a)| (id, a))
        .collect();
    let mut missing = Vec::new();
    let ids = topology.members().keys().chain(conf.iter());
    for &id in ids.collect::<BTreeSet<_>>() {
        if id == me {
            continue;
        }
        let parse = |a: Option<&String>| a.and_then(|a| a.parse::<SocketAddr>().ok());
        match topology.address(id).and_then(|a| a.parse().ok()) {
            Some(addr) => {
                peers.insert(id, addr);
            }
            None if peers.contains_key(&id) => {}
            None => match parse(carried.get(&id)) {
                Some(addr) => {
                    peers.insert(id, addr);
                }
                None => missing.push(id),
            },
        }
    }
    peers.remove(&me);
    (peers, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{denver_paris, TopologyChange, Witness};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Every member of `t` but `me` at 127.0.0.1:(7000 + id).
    fn configured(t: &Topology, me: NodeId) -> BTreeMap<NodeId, SocketAddr> {
        let ids = t.members().keys().filter(|&&id| id != me);
        ids.map(|&id| (id, addr(7000 + id.0 as u16))).collect()
    }

    fn none() -> BTreeMap<NodeId, String> {
        BTreeMap::new()
    }

    fn conf(t: &Topology) -> BTreeSet<NodeId> {
        t.members().keys().copied().collect()
    }

    #[test]
    fn at_version_zero_the_configured_peers_stand() {
        let t = denver_paris().build().unwrap();
        let me = NodeId(1);
        let mut cfg = configured(&t, me);
        cfg.insert(NodeId(42), addr(42)); // a replacement, not yet known
        let (peers, missing) = peer_map(me, &cfg, &t, &conf(&t), &none());
        assert_eq!(peers, cfg);
        assert!(missing.is_empty());
    }

    #[test]
    fn a_moved_member_is_reached_at_its_topology_address() {
        let t = denver_paris().build().unwrap();
        let me = NodeId(1);
        let cfg = configured(&t, me);
        let moved = TopologyChange::SetAddress {
            id: NodeId(3),
            address: "127.0.0.1:9003".into(),
        };
        let next = t.apply(&moved).unwrap();
        let (peers, _) = peer_map(me, &cfg, &next, &conf(&next), &none());
        let mut want = cfg.clone();
        want.insert(NodeId(3), addr(9003));
        assert_eq!(peers, want);
        // A host name is not resolved: the configured address stays.
        let named = TopologyChange::SetAddress {
            id: NodeId(3),
            address: "paris-3.example:7003".into(),
        };
        let next = t.apply(&named).unwrap();
        assert_eq!(peer_map(me, &cfg, &next, &conf(&next), &none()).0, cfg);
        // My own address is never a peer.
        let mine = TopologyChange::SetAddress {
            id: me,
            address: "127.0.0.1:9001".into(),
        };
        let next = t.apply(&mine).unwrap();
        assert_eq!(peer_map(me, &cfg, &next, &conf(&next), &none()).0, cfg);
    }

    #[test]
    fn added_members_join_and_removed_ones_leave() {
        let t = denver_paris().build().unwrap();
        let me = NodeId(1);
        let cfg = configured(&t, me);
        // The witness 5 leaves, a witness 77 comes in its place.
        let without = t
            .apply(&TopologyChange::RemoveMember { id: NodeId(5) })
            .unwrap();
        let mut want = cfg.clone();
        want.remove(&NodeId(5));
        assert_eq!(
            peer_map(me, &cfg, &without, &conf(&without), &none()).0,
            want
        );
        let add = TopologyChange::AddWitness {
            witness: Witness::new(77, "W77", "kansas", "host-77"),
            address: Some("127.0.0.1:7777".into()),
        };
        let added = without.apply(&add).unwrap();
        let (peers, missing) = peer_map(me, &cfg, &added, &conf(&added), &none());
        let mut with = want.clone();
        with.insert(NodeId(77), addr(7777));
        assert_eq!((peers, missing), (with, vec![]));
        // Removed again: out of the topology and the configuration.
        let removed = added
            .apply(&TopologyChange::RemoveMember { id: NodeId(77) })
            .unwrap();
        assert_eq!(
            peer_map(me, &cfg, &removed, &conf(&removed), &none()).0,
            want
        );
        // Still in the raft configuration (a joint one) but without an
        // address anywhere: reported missing.
        let mut joint = conf(&removed);
        joint.insert(NodeId(77));
        let (peers, missing) = peer_map(me, &cfg, &removed, &joint, &none());
        assert_eq!((peers, missing), (want.clone(), vec![NodeId(77)]));
        // Added without an address nor a configured one: missing too.
        let add = TopologyChange::AddWitness {
            witness: Witness::new(78, "W78", "kansas", "host-78"),
            address: None,
        };
        let bare = without.apply(&add).unwrap();
        let (peers, missing) = peer_map(me, &cfg, &bare, &conf(&bare), &none());
        assert_eq!((peers, missing), (want, vec![NodeId(78)]));
    }

    #[test]
    fn a_replacement_is_reached_at_the_address_it_was_given() {
        let t = denver_paris().build().unwrap();
        let me = NodeId(1);
        let cfg = configured(&t, me);
        let mut joint = conf(&t);
        joint.insert(NodeId(42)); // the learner, not yet in the topology
        let mut carried = BTreeMap::new();
        carried.insert(NodeId(42), "127.0.0.1:7042".to_string());
        let (peers, missing) = peer_map(me, &cfg, &t, &joint, &carried);
        let mut want = cfg.clone();
        want.insert(NodeId(42), addr(7042));
        assert_eq!((peers, missing), (want, vec![]));
        // A configured address stands over the carried one.
        let mut with = cfg.clone();
        with.insert(NodeId(42), addr(9042));
        assert_eq!(peer_map(me, &with, &t, &joint, &carried).0, with);
        // A carried host name is not resolved: missing.
        carried.insert(NodeId(42), "spare.example:7042".to_string());
        let (peers, missing) = peer_map(me, &cfg, &t, &joint, &carried);
        assert_eq!((peers, missing), (cfg.clone(), vec![NodeId(42)]));
        // Out of the configuration, a carried address is not used.
        carried.insert(NodeId(42), "127.0.0.1:7042".to_string());
        assert_eq!(peer_map(me, &cfg, &t, &conf(&t), &carried).0, cfg);
    }
}
