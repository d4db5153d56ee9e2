//! The operator endpoint in front of real members (the runtime's `Handle`,
//! loopback, durable storage): `/leader` answers 200 at the leader only,
//! `/status` and `/metrics` show the member, and the commands move
//! leadership (transfer, drain) as the handle does.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Cluster, Options, CM01A, CM01B};
use survivable_core::operator::{serve_member, OperatorServer};
use survivable_core::runtime::OperatorSettings;
use survivable_core::topology::NodeId;

fn call(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (code, json, body.to_string())
}

/// Each running member's endpoint, started as `node run` starts it.
fn endpoints(c: &Cluster) -> Vec<(NodeId, OperatorServer)> {
    c.members
        .iter()
        .map(|(&id, m)| {
            let mut cfg = c.config(id);
            cfg.operator = Some(OperatorSettings::new("127.0.0.1:0".parse().unwrap()));
            let server = serve_member(&cfg, &m.handle).unwrap().expect("an endpoint");
            (id, server)
        })
        .collect()
}

/// The members whose `/leader` answers 200.
fn leading(eps: &[(NodeId, OperatorServer)]) -> Vec<NodeId> {
    eps.iter()
        .filter(|(_, s)| call(s.local_addr(), "GET", "/leader").0 == 200)
        .map(|(id, _)| *id)
        .collect()
}

#[test]
fn real_members_answer_routing_checks_and_take_commands() {
    let c = Cluster::with(Options {
        tls: false,
        ..Options::default()
    });
    // Denver leads and its partner follows it: the partner's `/replica`
    // names the leader below, which it can only once it heard from it (a
    // wait for a leader alone let the partner be asked too early).
    let leader = c.denver_leader_settled();
    let other = if leader == CM01A { CM01B } else { CM01A };
    let eps = endpoints(&c);
    let ep = |id: NodeId| eps.iter().find(|(i, _)| *i == id).unwrap().1.local_addr();

    // Exactly one member answers /leader with 200: the leader.
    assert_eq!(leading(&eps), [leader]);
    let (code, body, _) = call(ep(other), "GET", "/replica");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["leader"], leader.0);
    let (code, body, _) = call(ep(leader), "GET", "/status");
    assert_eq!((code, &body["role"]), (200, &"leader".into()), "{body}");
    let (code, _, text) = call(ep(leader), "GET", "/metrics");
    assert_eq!(code, 200);
    assert!(text.contains("survivable_term"), "{text}");

    // A transfer asked of a follower is refused and changes nothing.
    let (code, body, _) = call(ep(other), "POST", &format!("/transfer/{}", other.0));
    assert_eq!(code, 409, "{body}");
    assert_eq!(leading(&eps), [leader]);

    // Transfer to the partner: it leads, and only it answers /leader.
    let (code, body, _) = call(ep(leader), "POST", &format!("/transfer/n{}", other.0));
    assert_eq!(code, 200, "{body}");
    c.wait_for(Duration::from_secs(10), "the transfer", |c| {
        c.leader() == Some(other)
    });
    c.wait_for(Duration::from_secs(5), "one /leader answer", |_| {
        leading(&eps) == [other]
    });

    // Drain the new leader: leadership moves away, it reports drained.
    let (code, body, _) = call(ep(other), "POST", "/drain");
    assert_eq!(code, 200, "{body}");
    c.wait_for(
        Duration::from_secs(10),
        "the drained leader to hand over",
        |c| c.leader().is_some_and(|l| l != other),
    );
    let (_, body, _) = call(ep(other), "GET", "/status");
    assert_eq!(body["drained"], true, "{body}");
    let (code, body, _) = call(ep(other), "POST", "/undrain");
    assert_eq!(code, 200, "{body}");
    let (_, body, _) = call(ep(other), "GET", "/status");
    assert_eq!(body["drained"], false, "{body}");
    for (_, s) in eps {
        s.shutdown();
    }
}
