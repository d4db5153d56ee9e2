//! The members a [`TcpTransport`](super::TcpTransport) talks to, and where:
//! a table the writers, the acceptor and the TLS verifiers read, and that
//! [`TcpTransport::set_peers`](super::TcpTransport) changes at runtime.
//!
//! The replicated topology decides who is a member and, when it names one,
//! where a member listens (see the runtime's `peers` module), so a member
//! that joins, leaves or moves is followed without restarting the others:
//!
//! - a peer added gets a writer (a queue and a thread dialling it);
//! - a peer moved gets a new writer dialling the new address; the old
//!   writer retires (it sends what it had queued if it can, then closes);
//! - a peer removed loses its writer the same way, its certificate is no
//!   longer accepted (TLS: the identity is not a member; plaintext: an
//!   unknown sender), and its inbound connection closes at its next wake.
//!
//! A new address is checked like the configured ones
//! ([`TransportSecurity::check_addresses`](super::TransportSecurity::check_addresses):
//! plaintext stays on loopback). A refused address is returned as a
//! [`PeerRefused`] and logged; the peer keeps the link it had, if any.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::RwLock;
use thiserror::Error;

use super::{outbound, TcpTransport, TransportError};
use crate::topology::NodeId;

/// A peer's new address was refused; the peer keeps what it had.
#[derive(Debug, Error)]
#[error("peer {peer}: address {addr} refused ({source}); the peer keeps its previous link, if any: fix the address in the topology (TopologyChange::SetAddress)")]
pub struct PeerRefused {
    /// The member.
    pub peer: NodeId,
    /// The address refused.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: TransportError,
}

/// What a peer's writer and the other threads share about it.
#[derive(Debug, Default)]
pub(crate) struct PeerFlags {
    /// Set when the peer's connection to this member was accepted: a sign
    /// it is (back) up, so the writer to it retries at once rather than
    /// waiting out its back-off, and checks its own connection.
    pub(crate) back: AtomicBool,
    /// Whether the writer holds a connection the peer confirmed.
    pub(crate) up: AtomicBool,
    /// Set when the peer moved or left: this writer stops.
    pub(crate) retired: AtomicBool,
}

/// One peer's entry.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) flags: Arc<PeerFlags>,
}

/// The peers now, by member.
#[derive(Debug, Default)]
pub(crate) struct PeerTable(RwLock<BTreeMap<NodeId, Peer>>);

impl PeerTable {
    /// A table of `peers`, each with fresh flags.
    pub(crate) fn new(peers: &BTreeMap<NodeId, SocketAddr>) -> Self {
        let map = peers
            .iter()
            .map(|(&id, &addr)| {
                let flags = Arc::default();
                (id, Peer { addr, flags })
            })
            .collect();
        Self(RwLock::new(map))
    }

    /// The flags of `id`'s current writer, if `id` is a peer.
    pub(crate) fn flags(&self, id: NodeId) -> Option<Arc<PeerFlags>> {
        self.0.read().get(&id).map(|p| p.flags.clone())
    }

    /// Whether `id` is a peer now.
    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.0.read().contains_key(&id)
    }

    /// Every peer's address now.
    pub(crate) fn addresses(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.0.read().iter().map(|(&id, p)| (id, p.addr)).collect()
    }

    /// Makes `next` the table: returns the peers to start a writer for
    /// (added or moved), with their new flags. Peers removed or moved
    /// have their old writer's flag `retired` set.
    pub(crate) fn replace(
        &self,
        next: &BTreeMap<NodeId, SocketAddr>,
    ) -> Vec<(NodeId, SocketAddr, Arc<PeerFlags>)> {
        let mut table = self.0.write();
        let mut start = Vec::new();
        table.retain(|id, p| {
            let keep = next.get(id) == Some(&p.addr);
            if !keep {
                p.flags
                    .retired
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            keep
        });
        for (&id, &addr) in next {
            if table.contains_key(&id) {
                continue;
            }
            let flags: Arc<PeerFlags> = Arc::default();
            table.insert(
                id,
                Peer {
                    addr,
                    flags: flags.clone(),
                },
            );
            start.push((id, addr, flags));
        }
        start
    }
}

impl TcpTransport {
    /// [`Transport::set_peers`](super::Transport::set_peers): see the
    /// [module docs](self).
    pub(super) fn update_peers(
        &mut self,
        wanted: BTreeMap<NodeId, SocketAddr>,
    ) -> Vec<PeerRefused> {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let before = shared.peers.addresses();
        let mut next = BTreeMap::new();
        let mut refused = Vec::new();
        for (peer, addr) in wanted {
            if peer == cfg.me {
                continue;
            }
            let one = BTreeMap::from([(peer, addr)]);
            match cfg.security.check_addresses(cfg.listen, &one) {
                Ok(()) => {
                    next.insert(peer, addr);
                }
                Err(source) => {
                    slog::warn!(shared.logger, "peer address refused; the peer keeps its previous link";
                        "peer" => peer.0, "addr" => %addr, "reason" => %source);
                    if let Some(&old) = before.get(&peer) {
                        next.insert(peer, old);
                    }
                    refused.push(PeerRefused { peer, addr, source });
                }
            }
        }
        if next == before {
            return refused;
        }
        for (peer, addr) in &before {
            match next.get(peer) {
                None => {
                    slog::info!(shared.logger, "peer removed: its link closes and it is refused";
                    "peer" => peer.0, "addr" => %addr)
                }
                Some(new) if new != addr => {
                    slog::info!(shared.logger, "peer moved: dialling its new address";
                    "peer" => peer.0, "from" => %addr, "to" => %new)
                }
                Some(_) => {}
            }
        }
        // Accepted (TLS identities, plaintext hellos) before anyone dials.
        if let Some(tls) = &shared.tls {
            tls.set_members(next.keys().copied().collect());
        }
        let started = shared.peers.replace(&next);
        self.queues.retain(|id, _| next.get(id) == before.get(id));
        let queue_len = cfg.limits.queue_len.max(1);
        for (peer, addr, flags) in started {
            if !before.contains_key(&peer) {
                slog::info!(shared.logger, "peer added"; "peer" => peer.0, "addr" => %addr);
            }
            let (tx, rx) = outbound::peer_queue(queue_len);
            self.queues.insert(peer, tx);
            let writer = outbound::spawn_writer(peer, addr, flags, rx, shared.clone());
            self.threads.push(writer);
        }
        self.threads.retain(|t| !t.is_finished());
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn added_moved_and_removed_peers_retire_and_start_the_right_writers() {
        let t = PeerTable::new(&BTreeMap::from([
            (NodeId(1), addr(1)),
            (NodeId(2), addr(2)),
        ]));
        let (one, two) = (t.flags(NodeId(1)).unwrap(), t.flags(NodeId(2)).unwrap());
        // 1 moves, 2 leaves, 3 joins.
        let next = BTreeMap::from([(NodeId(1), addr(11)), (NodeId(3), addr(3))]);
        let started = t.replace(&next);
        let ids: Vec<_> = started.iter().map(|(id, a, _)| (*id, *a)).collect();
        assert_eq!(ids, vec![(NodeId(1), addr(11)), (NodeId(3), addr(3))]);
        assert!(one.retired.load(Ordering::Acquire));
        assert!(two.retired.load(Ordering::Acquire));
        assert!(!t.flags(NodeId(1)).unwrap().retired.load(Ordering::Acquire));
        assert!(!t.contains(NodeId(2)));
        assert_eq!(t.addresses(), next);
        // The same table again changes nothing.
        let three = t.flags(NodeId(3)).unwrap();
        assert!(t.replace(&next).is_empty());
        assert!(Arc::ptr_eq(&three, &t.flags(NodeId(3)).unwrap()));
        assert!(!three.retired.load(Ordering::Acquire));
    }
}
