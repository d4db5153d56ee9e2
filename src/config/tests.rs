//! Unit tests of the decisions the parser makes on its own.

use std::path::Path;
use std::time::Duration;

use super::read::{Problems, Tbl};
use super::*;
use crate::transport::Limits;

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

#[test]
fn syntax_errors_count_lines_and_characters_from_one() {
    let text = "a = 1\nb = \"é\" x\n";
    let e = text.parse::<toml::Table>().unwrap_err();
    let p = syntax(text, &e);
    match p.kind {
        ProblemKind::Syntax { line, column, .. } => assert_eq!((line, column), (2, 9)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ranks_report_every_rank_above_a_gap() {
    let mut p = Problems::default();
    let ranks = [(1, "r1"), (3, "r3"), (4, "r4")]
        .into_iter()
        .map(|(r, k)| (r, k.to_string()))
        .collect();
    layout::rank_gaps(&ranks, &mut p);
    let got: Vec<_> =
        p.0.iter()
            .map(|x| (x.key.as_str(), x.kind.clone()))
            .collect();
    assert_eq!(
        got,
        [
            (
                "r3",
                ProblemKind::RankGap {
                    rank: 3,
                    missing: 2
                }
            ),
            (
                "r4",
                ProblemKind::RankGap {
                    rank: 4,
                    missing: 2
                }
            ),
        ]
    );
}

#[test]
fn times_of_day_are_two_digit_hours_and_minutes() {
    for (text, ok) in [
        ("00:00", true),
        ("23:59", true),
        ("24:00", false),
        ("12:60", false),
        ("7:30", false),
        ("07:3", false),
        ("+7:30", false),
        ("07:30:00", false),
        ("0730", false),
    ] {
        let mut p = Problems::default();
        let t = table(&format!("w = {text:?}"));
        let got = settings::time_of_day(Tbl::new(&t, "", &["w"], &mut p), "w", &mut p);
        assert_eq!(got.is_some(), ok, "{text}");
        assert_eq!(p.is_empty(), ok, "{text}");
    }
}

#[test]
fn integers_are_checked_for_sign_and_range() {
    let t = table("a = -1\nb = 0\nc = 86400001\nd = \"5\"\ne = 5");
    let mut p = Problems::default();
    let s = Tbl::new(&t, "x", &["a", "b", "c", "d", "e"], &mut p);
    assert_eq!(s.u64("a", read::Optional, &mut p), None);
    assert_eq!(s.count("b", &mut p), None);
    assert_eq!(s.ms("c", 0, &mut p), None);
    assert_eq!(s.u64("d", read::Optional, &mut p), None);
    assert_eq!(s.ms("e", 1, &mut p), Some(Duration::from_millis(5)));
    let keys: Vec<&str> = p.0.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["x.a", "x.b", "x.c", "x.d"]);
}

#[test]
fn limits_are_checked_as_the_transport_checks_them() {
    // The file's checks must refuse exactly what the transport refuses at
    // start, so a file that passes never fails there.
    for (frame, keepalive, idle) in [
        (4096, 100, 400),
        (4095, 100, 400),
        (65536, 100, 399),
        (65536, 0, 400),
        (1 << 30, 250, 2000),
    ] {
        let text = format!(
            "[limits]\nmax_frame = {frame}\nkeepalive_ms = {keepalive}\nidle_timeout_ms = {idle}"
        );
        let t = table(&text.replace("keepalive_ms = 0\n", ""));
        let mut p = Problems::default();
        let root = Tbl::new(&t, "", &["limits"], &mut p);
        let mut l = settings::limits(root, &mut p);
        if keepalive == 0 {
            l.keepalive = Duration::ZERO;
        }
        let want = Limits {
            max_frame: frame,
            keepalive: Duration::from_millis(keepalive),
            idle_timeout: Duration::from_millis(idle),
            ..Limits::default()
        };
        assert_eq!(l, want);
        if keepalive == 0 {
            // Zero is refused as out of range before the relation is checked.
            continue;
        }
        assert_eq!(p.is_empty(), want.check().is_ok(), "{text}: {:?}", p.0);
    }
}

#[test]
fn topology_errors_point_at_the_table_they_name() {
    let mut keys = std::collections::BTreeMap::new();
    keys.insert("cm02".to_string(), "cores[1]".to_string());
    keys.insert("W1".to_string(), "witnesses[0]".to_string());
    let pair = TopologyError::NotAPair {
        core: "cm02".into(),
        count: 3,
    };
    assert_eq!(topology_key(&pair, &keys), "cores[1].members");
    let witness = TopologyError::WitnessOutsideMainSite {
        witness: "W1".into(),
        site: "kansas".into(),
        main: "denver".into(),
    };
    assert_eq!(topology_key(&witness, &keys), "witnesses[0].site");
    assert_eq!(topology_key(&TopologyError::NoMainSite, &keys), "sites");
}

#[test]
fn a_main_site_file_builds_a_main_site_topology() {
    let text = r#"
cluster_id = 1
mode = "main-site"
[[sites]]
name = "denver"
main = true
[[sites]]
name = "paris"
[[cores]]
name = "cm01"
site = "denver"
members = [{ id = 1, name = "a", host = "h1", addr = "127.0.0.1:7001" },
           { id = 2, name = "b", host = "h2", addr = "127.0.0.1:7002" }]
[[cores]]
name = "cm02"
site = "paris"
rank = 1
members = [{ id = 3, name = "c", host = "h3", addr = "127.0.0.1:7003" },
           { id = 4, name = "d", host = "h4", addr = "127.0.0.1:7004" }]
[[witnesses]]
id = 5
name = "tb"
site = "denver"
host = "h5"
addr = "127.0.0.1:7005"
[member]
id = 4
data_dir = "/d"
insecure_plaintext_loopback_only = true
"#;
    let cfg = MemberConfig::from_toml(text, Path::new(".")).unwrap();
    assert_eq!(cfg.topology.mode(), QuorumMode::MainSite);
    assert_eq!(cfg.topology.learners(), vec![NodeId(3), NodeId(4)]);
}

#[test]
fn retention_keys_are_checked_against_keep_entries_and_their_ranges() {
    let parse = |text: &str| {
        let t = table(text);
        let mut p = Problems::default();
        let root = Tbl::new(&t, "", &["node"], &mut p);
        let n = settings::node(root, &mut p);
        let problems: Vec<(String, ProblemKind)> =
            p.0.iter()
                .map(|x| (x.key.clone(), x.kind.clone()))
                .collect();
        (n, problems)
    };
    let (n, problems) = parse(
        "[node]\nkeep_entries = 100\nretain_max_entries = 200\nretain_max_bytes = 4096\n\
         retain_warn_percent = 90\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        (
            n.retain_max_entries,
            n.retain_max_bytes,
            n.retain_warn_percent
        ),
        (Some(200), Some(4096), 90)
    );
    // Defaults: no bound, warn at 80 %.
    let (n, _) = parse("[node]\n");
    assert_eq!(
        (
            n.retain_max_entries,
            n.retain_max_bytes,
            n.retain_warn_percent
        ),
        (None, None, 80)
    );
    let (n, problems) = parse(
        "[node]\nkeep_entries = 100\nretain_max_entries = 199\nretain_max_bytes = 0\n\
         retain_warn_percent = 100\n",
    );
    assert_eq!(n.retain_max_entries, None);
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "node.retain_max_entries",
            "node.retain_max_bytes",
            "node.retain_warn_percent"
        ]
    );
    assert!(matches!(
        problems[0].1,
        ProblemKind::OutOfRange {
            value: 199,
            allowed: "must be at least twice keep_entries (and 1 or more)"
        }
    ));
}

const REPLACE_BASE: &str = r#"
cluster_id = 9
[[sites]]
name = "lab"
main = true
[[cores]]
name = "pair"
site = "lab"
members = [
  { id = 1, name = "a", host = "h1", addr = "127.0.0.1:7001" },
  { id = 2, name = "b", host = "h2", addr = "127.0.0.1:7002" },
]
[[witnesses]]
id = 3
name = "tb"
site = "lab"
host = "h3"
addr = "127.0.0.1:7003"
[member]
id = 1
data_dir = "d1"
insecure_plaintext_loopback_only = true
"#;

fn replace_problems(table: &str) -> Vec<(String, ProblemKind)> {
    let text = format!("{REPLACE_BASE}{table}");
    match MemberConfig::from_toml(&text, Path::new(".")) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| (p.key.clone(), p.kind.clone()))
            .collect(),
    }
}

#[test]
fn the_replace_table_gives_the_policy_and_the_spares_become_peers() {
    let cfg = MemberConfig::from_toml(REPLACE_BASE, Path::new(".")).unwrap();
    assert_eq!(cfg.node.replace, None, "off by default");
    let table = r#"
[replace]
after_ms = 60000
spares = [
  { id = 9, name = "c", host = "h4", addr = "127.0.0.1:7009" },
  { id = 10, name = "d", host = "h5", addr = "127.0.0.1:7010", dedicated = true },
]
"#;
    let text = format!("{REPLACE_BASE}{table}");
    let cfg = MemberConfig::from_toml(&text, Path::new(".")).unwrap();
    let policy = cfg.node.replace.clone().unwrap();
    assert_eq!(policy.after, Duration::from_secs(60));
    let ids: Vec<u64> = policy.spares.iter().map(|s| s.id.0).collect();
    assert_eq!(ids, vec![9, 10]);
    assert_eq!(
        policy.spares[1].appliance,
        crate::topology::Appliance::Dedicated
    );
    assert_eq!(
        cfg.peers.get(&NodeId(9)),
        Some(&"127.0.0.1:7009".parse().unwrap())
    );
    // Each spare's address rides in its replacement.
    let at: Vec<(u64, &str)> = (policy.addresses.iter())
        .map(|(id, a)| (id.0, a.as_str()))
        .collect();
    assert_eq!(at, vec![(9, "127.0.0.1:7009"), (10, "127.0.0.1:7010")]);
    assert!(cfg.replacements.contains(&NodeId(10)));
}

#[test]
fn a_bad_replace_table_is_named_at_its_key() {
    let got = replace_problems("[replace]\nspares = []\n");
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["replace.after_ms", "replace.spares"], "{got:?}");
    // A spare reusing a member's id or address points at the first use.
    let got = replace_problems(
        "[replace]\nafter_ms = 1000\nspares = [{ id = 2, name = \"c\", host = \"h4\", addr = \"127.0.0.1:7001\" }]\n",
    );
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec!["replace.spares[0].id", "replace.spares[0].addr"],
        "{got:?}"
    );
    assert!(matches!(got[0].1, ProblemKind::DuplicateId { id: 2, .. }));
    // Unknown keys and a zero duration.
    let got = replace_problems("[replace]\nafter_ms = 0\nspare = 1\nspares = []\n");
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"replace.spare"), "{got:?}");
    assert!(keys.contains(&"replace.after_ms"), "{got:?}");
}

#[test]
fn a_spare_started_from_its_own_file_joins() {
    let table = r#"
[replace]
after_ms = 60000
spares = [{ id = 9, name = "CM01c", host = "h4", addr = "127.0.0.1:7009" }]
"#;
    let text = format!("{REPLACE_BASE}{table}").replace("id = 1\ndata_dir", "id = 9\ndata_dir");
    let cfg = MemberConfig::from_toml(&text, Path::new(".")).unwrap();
    assert_eq!(cfg.id, NodeId(9));
    let joining = cfg.joining.clone().expect("a spare starts joining");
    assert_eq!(joining.id(), NodeId(9));
    assert_eq!(joining.spec.name, "CM01c");
    assert!(matches!(joining.role, Role::MainCore { position: 1, .. }));
    assert_eq!(cfg.listen, "127.0.0.1:7009".parse().unwrap());
    assert!(!cfg.peers.contains_key(&NodeId(9)), "not its own peer");
    for id in cfg.topology.members().keys() {
        assert!(cfg.peers.contains_key(id), "{id} missing from the peers");
    }
    // An id that is neither a member nor a spare is still refused.
    let text = format!("{REPLACE_BASE}{table}").replace("id = 1\ndata_dir", "id = 11\ndata_dir");
    let got = MemberConfig::from_toml(&text, Path::new(".")).unwrap_err();
    assert!(
        (got.problems().iter()).any(|p| p.kind == ProblemKind::NotInTopology { id: 11 }),
        "{got:?}"
    );
}

#[test]
fn sync_wait_is_read_in_dr_auto_sync_mode_only() {
    let t = table("[timers]\nsync_wait_ms = 6000\n");
    let read = |mode| {
        let mut p = Problems::default();
        let root = Tbl::new(&t, "", &["timers"], &mut p);
        let timers = settings::timers(root, mode, &mut p);
        let problems: Vec<(String, ProblemKind)> =
            p.0.iter()
                .map(|x| (x.key.clone(), x.kind.clone()))
                .collect();
        (timers.sync_wait, problems)
    };
    let (wait, problems) = read(QuorumMode::DrAutoSync);
    assert_eq!(wait, Duration::from_secs(6));
    assert!(problems.is_empty(), "{problems:?}");
    for mode in [QuorumMode::Witness, QuorumMode::MainSite] {
        let (wait, problems) = read(mode);
        // Left at its default, and the key named as unused.
        assert_eq!(wait, crate::policy::Timers::default().sync_wait);
        assert_eq!(
            problems,
            [(
                "timers.sync_wait_ms".to_string(),
                ProblemKind::Unused {
                    unless: "unless mode = \"dr-auto-sync\""
                }
            )]
        );
    }
}

#[test]
fn dr_layout_errors_point_at_the_table_to_change() {
    use crate::topology::TopologyError as E;
    let keys = std::collections::BTreeMap::new();
    let d = Duration::ZERO;
    let cases = [
        (
            E::DrNeedsTwoSites {
                count: 3,
                sites: vec![],
            },
            "sites",
        ),
        (E::DrSiteWithoutVoter { site: "p".into() }, "cores"),
        (
            E::DrMainSiteNotMajority {
                main: "d".into(),
                main_voters: 2,
                voters: 4,
                more: 1,
            },
            "witnesses",
        ),
        (
            E::DrSyncWaitTooShort {
                sync_wait: d,
                need: d,
                survivable_after: d,
                election: d,
                rtt: d,
            },
            "timers.sync_wait_ms",
        ),
    ];
    for (e, key) in cases {
        assert_eq!(topology_key(&e, &keys), key, "{e}");
    }
}
