//! Peers' addresses follow the replicated topology, over real TCP
//! loopback, without restarting any running member: a witness added at
//! runtime (mutual TLS) is dialled and accepted, restarts from its data
//! without `joining`, and is refused once removed; a member moved with
//! `SetAddress` is reached at its new port; a new address plaintext may
//! not use is refused, and the member keeps its link; a replacement that
//! no running member has in its peers, given its address at the leader
//! (`replace_member_at`), is dialled, promoted and named at that address
//! in every member's topology. Every command is applied exactly once at
//! every member that applies it.

mod support;

use std::time::{Duration, Instant};

use support::pki::Ca;
use support::{free_addr, Cluster, Options, CLUSTER, CM01B, CM02A, CM02B, W1};
use survivable_core::runtime::MemberConfig;
use survivable_core::topology::{Member, MemberSpec, NodeId, TopologyChange, Witness};
use survivable_core::transport::{
    CertifiedAs, ConnectionError, PeerIdentity, TlsFiles, TransportSecurity,
};

/// The witness added at runtime.
const W2: NodeId = NodeId(9);

/// Waits until every running member has applied topology `version`.
fn all_at(c: &Cluster, version: u64) {
    c.wait_for(
        Duration::from_secs(20),
        "every member at the version",
        |c| {
            c.members
                .values()
                .all(|m| m.handle.topology().is_some_and(|t| t.version() >= version))
        },
    );
}

/// Proposes `what` at the leader and waits until each of `at` applied it.
fn commits_at(c: &Cluster, what: &str, at: &[NodeId]) {
    let leader = c.leader().expect("a leader");
    let r = c.members[&leader]
        .handle
        .propose_timeout(what.as_bytes().to_vec(), Duration::from_secs(10));
    assert!(r.is_ok(), "{what}: {r:?}");
    c.wait_for(Duration::from_secs(20), what, |c| {
        at.iter()
            .all(|id| c.applied(*id).contains(&what.as_bytes().to_vec()))
    });
}

/// Every command applied at most once, at every running member.
fn applied_once(c: &Cluster) {
    for &id in c.members.keys() {
        let log = c.applied(id);
        for cmd in &log {
            let n = log.iter().filter(|c| *c == cmd).count();
            assert_eq!(n, 1, "member {id:?} applied {:?} {n} times", cmd);
        }
    }
}

/// The configuration of the witness added at runtime: the cluster's
/// (version 0) topology, every other member as a configured peer.
fn witness_config(c: &Cluster, listen: std::net::SocketAddr) -> MemberConfig {
    MemberConfig::new(
        c.topology.clone(),
        W2,
        listen,
        c.addrs.clone(),
        c.dir.path().join("n9"),
        TransportSecurity::MutualTls(TlsFiles::in_dir(&c.pki_dir(), W2)),
    )
}

#[test]
fn a_witness_added_at_runtime_joins_restarts_and_is_refused_once_removed() {
    let mut c = Cluster::new();
    c.settled(CM01B);
    let ca: &Ca = c.ca.as_ref().unwrap();
    let issued = ca.member(PeerIdentity::new(CLUSTER, W2), 2).unwrap();
    ca.write_member(&c.pki_dir(), W2, &issued).unwrap();
    let listen = free_addr();
    let add = TopologyChange::AddWitness {
        witness: Witness::new(W2.0, "W2", "kansas", "wit-2"),
        address: Some(listen.to_string()),
    };
    let me = c.topology.apply(&add).unwrap().member(W2).cloned();
    let leader = c.leader().expect("a leader");
    assert_eq!(c.members[&leader].handle.change_topology(add), Ok(1));
    all_at(&c, 1);

    // Started joining; no running member restarts.
    let mut cfg = witness_config(&c, listen);
    cfg.joining = me;
    c.try_start(cfg).expect("the witness starts joining");
    commits_at(&c, "with W2", &[W2]);
    c.wait_for(Duration::from_secs(20), "W2 follows the leader", |c| {
        c.status(W2).leader.is_some() && c.stats(W2).accepted >= 1
    });

    // Restarted from its data, without `joining`.
    c.kill(W2);
    c.try_start(witness_config(&c, listen))
        .expect("a member added at runtime restarts without joining");
    commits_at(&c, "W2 restarted", &[W2]);
    let all: Vec<NodeId> = c.members.keys().copied().collect();
    commits_at(&c, "everyone", &all);
    applied_once(&c);

    // Removed: the running members refuse its certificate.
    let leader = c.leader().expect("a leader");
    let remove = TopologyChange::RemoveMember { id: W2 };
    assert_eq!(c.members[&leader].handle.change_topology(remove), Ok(2));
    c.wait_for(Duration::from_secs(20), "version 2 at the others", |c| {
        c.members
            .iter()
            .filter(|(&id, _)| id != W2)
            .all(|(_, m)| m.handle.topology().is_some_and(|t| t.version() >= 2))
    });
    let refused_w2 = |e: &ConnectionError| {
        matches!(e, ConnectionError::CertificateIdentity { found: CertifiedAs::Peer(p), .. }
            if *p == PeerIdentity::new(CLUSTER, W2))
    };
    let start = Instant::now();
    loop {
        let refusing = c
            .members
            .iter()
            .filter(|(&id, _)| id != W2)
            .filter(|(_, m)| m.transport.recent_refusals().iter().any(refused_w2))
            .count();
        if refusing >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no running member refused the removed witness"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.kill(W2);
    let rest: Vec<NodeId> = c.members.keys().copied().collect();
    commits_at(&c, "without W2", &rest);
    applied_once(&c);
}

#[test]
fn a_member_moved_with_set_address_is_reached_at_its_new_port() {
    let mut c = Cluster::with(Options {
        tls: false,
        ..Options::default()
    });
    c.settled(CM01B);
    let new = free_addr();
    let leader = c.leader().expect("a leader");
    let moved = TopologyChange::SetAddress {
        id: CM02B,
        address: new.to_string(),
    };
    assert_eq!(c.members[&leader].handle.change_topology(moved), Ok(1));
    all_at(&c, 1);

    // Restarted on the new port; the others' `peers` still name the old.
    c.kill(CM02B);
    let mut cfg = c.config(CM02B);
    cfg.listen = new;
    c.try_start(cfg).expect("CM02B starts on its new port");
    commits_at(&c, "after the move", &[CM02B]);
    let others = c.members.len() as u64 - 1;
    c.wait_for(
        Duration::from_secs(20),
        "every member connects to it",
        |c| c.stats(CM02B).accepted >= others,
    );

    // Plaintext may not leave loopback: the address is refused, logged,
    // and the witness keeps its link.
    let leader = c.leader().expect("a leader");
    let away = TopologyChange::SetAddress {
        id: W1,
        address: "10.0.0.5:7000".into(),
    };
    assert_eq!(c.members[&leader].handle.change_topology(away), Ok(2));
    all_at(&c, 2);
    c.wait_for(Duration::from_secs(10), "the refusal logged", |c| {
        !c.logged(leader, "peer address refused").is_empty()
    });
    let all: Vec<NodeId> = c.members.keys().copied().collect();
    commits_at(&c, "after the refused move", &all);
    applied_once(&c);
}

/// The member replacing CM02B at runtime.
const CM02C: NodeId = NodeId(10);

#[test]
fn a_replacement_given_its_address_needs_no_restart_of_the_others() {
    let mut c = Cluster::with(Options {
        tls: false,
        ..Options::default()
    });
    c.settled(CM02A);
    commits_at(&c, "before", &[CM02B]);
    // Each running member's recorder: a restarted member gets a new one.
    let recorders: Vec<_> = (c.logs.iter())
        .filter(|(&id, _)| id != CM02B)
        .map(|(&id, r)| (id, r.applied.clone()))
        .collect();
    c.kill(CM02B);
    let old = c.topology.member(CM02B).unwrap().clone();
    let partner = c.topology.member(CM02A).unwrap();
    let spec = MemberSpec {
        id: CM02C,
        name: "CM02c".into(),
        host: "paris-new".into(),
        appliance: partner.spec.appliance,
    };
    // A fresh port no running member has in its peers.
    let listen = free_addr();
    assert!(!c.addrs.values().any(|&a| a == listen));
    let mut cfg = MemberConfig::new(
        c.topology.clone(),
        CM02C,
        listen,
        c.addrs.clone(),
        c.dir.path().join("n10"),
        c.security(CM02C),
    );
    cfg.joining = Some(Member {
        spec: spec.clone(),
        site: old.site.clone(),
        role: old.role.clone(),
    });
    c.try_start(cfg).expect("the replacement starts joining");

    let leader = c.leader().expect("a leader");
    let handle = &c.members[&leader].handle;
    let blank = handle.replace_member_at(CM02B, spec.clone(), Some(" ".into()));
    assert!(blank.is_err(), "a blank address is refused: {blank:?}");
    handle
        .replace_member_at(CM02B, spec, Some(listen.to_string()))
        .expect("the replacement is accepted");
    c.wait_for(
        Duration::from_secs(30),
        "CM02c promoted, named at its address everywhere",
        |c| {
            c.members.values().all(|m| {
                m.handle.topology().is_some_and(|t| {
                    t.member(CM02C).is_some()
                        && t.member(CM02B).is_none()
                        && t.address(CM02C) == Some(listen.to_string().as_str())
                })
            })
        },
    );
    let all: Vec<NodeId> = c.members.keys().copied().collect();
    for i in 0..5 {
        commits_at(&c, &format!("after the replacement {i}"), &all);
    }
    assert!(c.applied(CM02C).contains(&b"before".to_vec()));
    applied_once(&c);
    for (id, applied) in recorders {
        let now = &c.logs[&id].applied;
        assert!(std::sync::Arc::ptr_eq(&applied, now), "{id:?} restarted");
    }
}
