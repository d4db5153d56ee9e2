//! Member files read by the library (`survivable_core::config`): a full
//! file becomes the expected `MemberConfig`; every bad input is refused
//! with typed problems naming their keys, all of them at once; no text
//! makes the parser panic; and the settings a file gives reach a running
//! member started on a store of the caller's (`start_member_with_storage`
//! with `MemStorage`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quickcheck::{QuickCheck, TestResult};
use survivable_core::config::{ConfigError, ProblemKind};
use survivable_core::policy::{HandBack, HandBackPolicy, PolicyError, QuorumMode, Timers};
use survivable_core::runtime::{
    start_member_with_storage, MemberConfig, NodeSettings, RuntimeSettings,
};
use survivable_core::storage::MemStorage;
use survivable_core::topology::{
    Appliance, Core, NodeId, Site, SurvivableCore, Topology, TopologyError, Witness,
};
use survivable_core::transport::{Limits, TransportSecurity};
use survivable_core::{ProposeError, RestoreError, StateMachine};

/// A file with every table and most keys set to something other than
/// their defaults.
const FULL: &str = r#"
cluster_id = 77
mode = "witness"

[[sites]]
name = "denver"
main = true
[[sites]]
name = "paris"
[[sites]]
name = "lyon"
[[sites]]
name = "kansas"

[[cores]]
name = "cm01"
site = "denver"
members = [
  { id = 1, name = "CM01a", host = "h1", addr = "10.0.1.1:7001", dedicated = true },
  { id = 2, name = "CM01b", host = "h2", addr = "10.0.1.2:7001", dedicated = true },
]
[[cores]]
name = "cm02"
site = "paris"
rank = 1
members = [
  { id = 3, name = "CM02a", host = "h3", addr = "10.0.2.1:7001" },
  { id = 4, name = "CM02b", host = "h4", addr = "10.0.2.2:7001" },
]
[[cores]]
name = "cm03"
site = "lyon"
rank = 2
[[cores.members]]
id = 6
name = "CM03a"
host = "h6"
addr = "[fd00::6]:7001"
[[cores.members]]
id = 7
name = "CM03b"
host = "h7"
addr = "[fd00::7]:7001"

[[witnesses]]
id = 5
name = "W1"
site = "kansas"
host = "h5"
addr = "10.0.3.1:7001"

[timers]
tick_ms = 10
heartbeat_ms = 20
election_ms = 400
failover_ms = 200
survivable_after_ms = 3000
rank_step_ms = 500

[hand_back]
policy = "window"
window_start = "22:00"
window_end = "06:30"
max_lag_entries = 10
max_attempts = 3
retry_after_ms = 100

[member]
id = 3
data_dir = "data/cm02a"
listen = "0.0.0.0:7001"

[tls]
ca = "pki/ca.pem"
cert = "/etc/pki/node-3.pem"
key = "pki/node-3.key"

[node]
forward_proposals = false
max_pending = 100
max_command_len = 4096
snapshot_every = 50
keep_entries = 5000
seed = 9

[runtime]
batch = 64
event_queue = 128
warn_stall_ms = 80
metrics = false

[limits]
queue_len = 512
max_frame = 65536
max_message = 1048576
hello_timeout_ms = 1000
frame_timeout_ms = 3000
max_connections = 16
backoff_min_ms = 10
backoff_max_ms = 500
keepalive_ms = 100
idle_timeout_ms = 1000
inbound_bytes = 67108864
"#;

fn parse(text: &str) -> Result<MemberConfig, ConfigError> {
    MemberConfig::from_toml(text, Path::new("/srv/sc"))
}

/// The problems of a text that must be refused, as (key, kind).
fn problems(text: &str) -> Vec<(String, ProblemKind)> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            // Every problem is in the error's message, at its key.
            let shown = e.to_string();
            for p in e.problems() {
                assert!(shown.contains(&p.to_string()), "{shown}");
            }
            e.problems()
                .iter()
                .map(|p| (p.key.clone(), p.kind.clone()))
                .collect()
        }
    }
}

/// The one problem of a text with a single mistake.
fn problem(text: &str) -> (String, ProblemKind) {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_full_file_is_read_into_the_expected_member_config() {
    let cfg = parse(FULL).unwrap();
    let mut b = Topology::builder(77);
    b.mode(QuorumMode::Witness)
        .site(Site::main("denver"))
        .site(Site::backup("paris"))
        .site(Site::backup("lyon"))
        .site(Site::backup("kansas"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "CM01a", "h1", Appliance::Dedicated)
                .member(2, "CM01b", "h2", Appliance::Dedicated),
        )
        .survivable_core(SurvivableCore::new(
            1,
            Core::new("cm02", "paris")
                .member(3, "CM02a", "h3", Appliance::Virtual)
                .member(4, "CM02b", "h4", Appliance::Virtual),
        ))
        .survivable_core(SurvivableCore::new(
            2,
            Core::new("cm03", "lyon")
                .member(6, "CM03a", "h6", Appliance::Virtual)
                .member(7, "CM03b", "h7", Appliance::Virtual),
        ))
        .witness(Witness::new(5, "W1", "kansas", "h5"))
        .timers(Timers {
            tick: ms(10),
            heartbeat: ms(20),
            election: ms(400),
            failover: ms(200),
            survivable_after: ms(3000),
            rank_step: ms(500),
            ..Timers::default()
        })
        .hand_back(HandBack {
            policy: HandBackPolicy::Window {
                start: survivable_core::policy::TimeOfDay::hm(22, 0),
                end: survivable_core::policy::TimeOfDay::hm(6, 30),
            },
            max_lag_entries: 10,
            max_attempts: Some(3),
            retry_after: ms(100),
        });
    let want = b.build().unwrap();
    let got = &cfg.topology;
    assert_eq!(got.cluster_id(), want.cluster_id());
    assert_eq!(got.mode(), want.mode());
    assert_eq!(got.sites(), want.sites());
    assert_eq!(got.members(), want.members());
    assert_eq!(got.timers(), want.timers());
    assert_eq!(got.hand_back(), want.hand_back());
    assert_eq!(got.fingerprint(), want.fingerprint());

    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let peers: BTreeMap<NodeId, SocketAddr> = [
        (1, "10.0.1.1:7001"),
        (2, "10.0.1.2:7001"),
        (4, "10.0.2.2:7001"),
        (5, "10.0.3.1:7001"),
        (6, "[fd00::6]:7001"),
        (7, "[fd00::7]:7001"),
    ]
    .into_iter()
    .map(|(id, a)| (NodeId(id), addr(a)))
    .collect();
    assert_eq!(cfg.id, NodeId(3));
    assert_eq!(cfg.listen, addr("0.0.0.0:7001"));
    assert_eq!(cfg.peers, peers);
    // Relative paths are taken from the file's directory, absolute ones kept.
    assert_eq!(cfg.data_dir, PathBuf::from("/srv/sc/data/cm02a"));
    assert_eq!(
        cfg.security,
        TransportSecurity::mutual_tls(
            "/srv/sc/pki/ca.pem",
            "/etc/pki/node-3.pem",
            "/srv/sc/pki/node-3.key"
        )
    );
    assert_eq!(cfg.joining, None);
    assert!(cfg.replacements.is_empty());
    assert_eq!(
        cfg.node,
        NodeSettings {
            forward_proposals: false,
            max_pending: 100,
            max_command_len: 4096,
            snapshot_every: 50,
            keep_entries: 5000,
            seed: Some(9),
            retain_max_entries: None,
            retain_max_bytes: None,
            retain_warn_percent: 80,
            replace: None,
        }
    );
    assert_eq!(
        cfg.runtime,
        RuntimeSettings {
            batch: 64,
            event_queue: 128,
            warn_stall: ms(80),
            metrics: false,
        }
    );
    assert_eq!(
        cfg.limits,
        Limits {
            queue_len: 512,
            max_frame: 65536,
            max_message: 1 << 20,
            hello_timeout: ms(1000),
            frame_timeout: ms(3000),
            max_connections: 16,
            backoff: (ms(10), ms(500)),
            keepalive: ms(100),
            idle_timeout: ms(1000),
            inbound_bytes: 64 << 20,
        }
    );
}

/// The smallest file: a pair and a tie-breaker in one site, plaintext on
/// loopback, everything optional left out.
fn minimal(addrs: [SocketAddr; 3], id: u64, extra: &str) -> String {
    format!(
        r#"cluster_id = 9
[[sites]]
name = "lab"
main = true
[[cores]]
name = "pair"
site = "lab"
members = [
  {{ id = 1, name = "a", host = "h1", addr = "{}" }},
  {{ id = 2, name = "b", host = "h2", addr = "{}" }},
]
[[witnesses]]
id = 3
name = "tb"
site = "lab"
host = "h3"
addr = "{}"
[member]
id = {id}
data_dir = "d{id}"
insecure_plaintext_loopback_only = true
{extra}"#,
        addrs[0], addrs[1], addrs[2]
    )
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn left_out_settings_take_their_defaults() {
    let cfg = parse(&minimal([lo(7001), lo(7002), lo(7003)], 2, "")).unwrap();
    assert_eq!(cfg.listen, lo(7002));
    assert_eq!(
        cfg.security,
        TransportSecurity::InsecurePlaintextLoopbackOnly
    );
    assert_eq!(cfg.node, NodeSettings::default());
    assert_eq!(cfg.runtime, RuntimeSettings::default());
    assert_eq!(cfg.limits, Limits::default());
    assert_eq!(cfg.topology.timers(), &Timers::default());
    assert_eq!(cfg.topology.hand_back(), &HandBack::default());
    assert_eq!(cfg.topology.mode(), QuorumMode::Witness);
}

#[test]
fn unknown_keys_are_refused_each_at_its_key() {
    let text = FULL
        .replace("rank = 2", "rank = 2\nranking = 2")
        .replace("host = \"h4\"", "host = \"h4\", adr = \"x\"")
        .replace("keep_entries", "keep_entry")
        .replace("[limits]", "[limits]\nmax_frames = 1")
        .replace("cluster_id = 77", "cluster_id = 77\nclusterid = 1");
    let got = problems(&text);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "clusterid",
            // A table's own keys are checked before its arrays' tables.
            "cores[2].ranking",
            "cores[1].members[1].adr",
            "node.keep_entry",
            "limits.max_frames",
        ]
    );
    for (key, kind) in got {
        let ProblemKind::UnknownKey { known } = kind else {
            panic!("{key}: {kind:?}");
        };
        let last = key.rsplit('.').next().unwrap();
        assert!(!known.contains(&last), "{key}: {known:?}");
    }
}

#[test]
fn bad_addresses_are_named() {
    let text = FULL
        .replace("10.0.2.2:7001", "10.0.2.2")
        .replace("[fd00::7]:7001", "cm03b.example:7001")
        .replace("listen = \"0.0.0.0:7001\"", "listen = 7001");
    let got = problems(&text);
    assert!(
        matches!(&got[0], (k, ProblemKind::BadAddress { value, .. }) if k == "cores[1].members[1].addr" && value == "10.0.2.2"),
        "{got:?}"
    );
    assert!(
        matches!(&got[1], (k, ProblemKind::BadAddress { .. }) if k == "cores[2].members[1].addr"),
        "{got:?}"
    );
    assert!(
        matches!(&got[2], (k, ProblemKind::WrongType { expected: "a string", found: "integer" }) if k == "member.listen"),
        "{got:?}"
    );
    assert_eq!(got.len(), 3);
}

#[test]
fn duplicate_ids_names_addresses_and_sites_point_at_the_first_use() {
    let text = FULL
        .replace("id = 6", "id = 2")
        .replace("name = \"CM02b\"", "name = \"CM02a\"")
        .replace("10.0.3.1:7001", "10.0.1.1:7001")
        .replace("name = \"lyon\"\n[[sites]]", "name = \"paris\"\n[[sites]]");
    let got = problems(&text);
    let has = |key: &str, f: &dyn Fn(&ProblemKind) -> bool| {
        assert!(got.iter().any(|(k, p)| k == key && f(p)), "{key}: {got:#?}")
    };
    has(
        "sites[2].name",
        &|p| matches!(p, ProblemKind::DuplicateName { first, .. } if first == "sites[1].name"),
    );
    has(
        "cores[1].members[1].name",
        &|p| matches!(p, ProblemKind::DuplicateName { first, .. } if first == "cores[1].members[0].name"),
    );
    has(
        "cores[2].members[0].id",
        &|p| matches!(p, ProblemKind::DuplicateId { id: 2, first } if first == "cores[0].members[1].id"),
    );
    has(
        "witnesses[0].addr",
        &|p| matches!(p, ProblemKind::DuplicateAddress { first, .. } if first == "cores[0].members[0].addr"),
    );
    // "lyon" is no longer declared: cm03 is in an unknown site.
    has(
        "cores[2].site",
        &|p| matches!(p, ProblemKind::UnknownSite { site } if site == "lyon"),
    );
    assert_eq!(got.len(), 5, "{got:#?}");
}

#[test]
fn a_missing_member_table_or_key_is_named() {
    let no_member = FULL.replace("[member]\nid = 3\n", "[other]\nid = 3\n");
    let got = problems(&no_member);
    assert!(got
        .iter()
        .any(|(k, p)| k == "member" && matches!(p, ProblemKind::Missing { .. })));
    assert!(got
        .iter()
        .any(|(k, p)| k == "other" && matches!(p, ProblemKind::UnknownKey { .. })));

    let no_id = FULL.replace("[member]\nid = 3\n", "[member]\n");
    assert!(matches!(problem(&no_id), (k, ProblemKind::Missing { .. }) if k == "member.id"));

    let stranger = FULL.replace("[member]\nid = 3\n", "[member]\nid = 30\n");
    assert_eq!(
        problem(&stranger),
        ("member.id".into(), ProblemKind::NotInTopology { id: 30 })
    );

    let no_addr = FULL.replace(", addr = \"10.0.2.2:7001\"", "");
    assert!(
        matches!(problem(&no_addr), (k, ProblemKind::Missing { .. }) if k == "cores[1].members[1].addr")
    );
}

#[test]
fn timers_that_contradict_each_other_are_named_at_the_key_to_change() {
    let cases = [
        (
            "failover_ms = 200",
            "failover_ms = 30",
            "timers.failover_ms",
        ),
        (
            "heartbeat_ms = 20",
            "heartbeat_ms = 400",
            "timers.heartbeat_ms",
        ),
        (
            "survivable_after_ms = 3000",
            "survivable_after_ms = 700",
            "timers.survivable_after_ms",
        ),
        ("tick_ms = 10", "tick_ms = 0", "timers.tick_ms"),
    ];
    for (from, to, key) in cases {
        let (k, p) = problem(&FULL.replace(from, to));
        assert_eq!(k, key, "{to}: {p}");
        match (to, p) {
            ("failover_ms = 30", ProblemKind::Policy(PolicyError::FailoverOutOfRange { .. }))
            | (
                "heartbeat_ms = 400",
                ProblemKind::Policy(PolicyError::HeartbeatNotBelowElection { .. }),
            )
            | (
                "survivable_after_ms = 700",
                ProblemKind::Policy(PolicyError::SurvivableTooEarly { .. }),
            )
            | ("tick_ms = 0", ProblemKind::OutOfRange { value: 0, .. }) => {}
            (to, p) => panic!("{to}: {p:?}"),
        }
    }
    let seconds_for_ms = FULL.replace("rank_step_ms = 500", "rank_step_ms = 500000000000");
    assert!(
        matches!(problem(&seconds_for_ms), (k, ProblemKind::OutOfRange { .. }) if k == "timers.rank_step_ms")
    );
}

#[test]
fn ranks_must_be_distinct_positive_and_without_gaps() {
    let gap = FULL.replace("rank = 2", "rank = 3");
    assert_eq!(
        problem(&gap),
        (
            "cores[2].rank".into(),
            ProblemKind::RankGap {
                rank: 3,
                missing: 2
            }
        )
    );
    let twice = FULL.replace("rank = 2", "rank = 1");
    assert_eq!(
        problem(&twice),
        (
            "cores[2].rank".into(),
            ProblemKind::DuplicateRank {
                rank: 1,
                first: "cores[1].rank".into()
            }
        )
    );
    let zero = FULL.replace("rank = 1", "rank = 0");
    let got = problems(&zero);
    assert!(
        matches!(&got[0], (k, ProblemKind::OutOfRange { value: 0, .. }) if k == "cores[1].rank")
    );
    // And rank 2 now lacks a rank 1 before it.
    assert!(
        matches!(&got[1], (k, ProblemKind::RankGap { rank: 2, missing: 1 }) if k == "cores[2].rank")
    );
    // A survivable core in the main site is the topology's to refuse, at the core's rank.
    let in_main = FULL.replace("site = \"lyon\"", "site = \"denver\"");
    assert!(matches!(
        problem(&in_main),
        (k, ProblemKind::Topology(TopologyError::SurvivableInMainSite { .. })) if k == "cores[2].rank"
    ));
}

#[test]
fn security_must_be_tls_or_the_loopback_flag_never_both_nor_neither() {
    let neither = FULL
        .replace("[tls]\nca = \"pki/ca.pem\"\n", "[tls]\n")
        .replace(
            "[tls]\ncert = \"/etc/pki/node-3.pem\"\nkey = \"pki/node-3.key\"\n",
            "",
        );
    assert_eq!(problem(&neither), ("tls".into(), ProblemKind::TlsMissing));

    let both = FULL.replace(
        "listen = \"0.0.0.0:7001\"",
        "insecure_plaintext_loopback_only = true",
    );
    let got = problems(&both);
    assert_eq!(
        got[0],
        (
            "member.insecure_plaintext_loopback_only".into(),
            ProblemKind::TlsAndPlaintext
        )
    );

    let half = FULL.replace("key = \"pki/node-3.key\"\n", "");
    assert!(matches!(problem(&half), (k, ProblemKind::Missing { .. }) if k == "tls.key"));

    // Plaintext off loopback: every such address is named.
    let mut off = minimal([lo(7001), lo(7002), lo(7003)], 1, "");
    off = off.replace("127.0.0.1:7002", "10.1.1.2:7002");
    assert!(matches!(
        problem(&off),
        (k, ProblemKind::PlaintextOffLoopback { .. }) if k == "cores[0].members[1].addr"
    ));
}

#[test]
fn hand_back_keys_must_fit_the_policy() {
    let stray = FULL.replace("policy = \"window\"", "policy = \"immediate\"");
    let got = problems(&stray);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["hand_back.window_start", "hand_back.window_end"]);
    assert!(got
        .iter()
        .all(|(_, p)| matches!(p, ProblemKind::Unused { .. })));

    let typo = FULL.replace("policy = \"window\"", "policy = \"after_stable\"");
    assert!(problems(&typo)
        .iter()
        .any(|(k, p)| k == "hand_back.policy" && matches!(p, ProblemKind::UnknownChoice { .. })));

    let bad_time = FULL.replace("\"06:30\"", "\"6:30pm\"");
    assert!(
        matches!(problem(&bad_time), (k, ProblemKind::BadTime { .. }) if k == "hand_back.window_end")
    );

    let empty = FULL.replace("\"06:30\"", "\"22:00\"");
    assert!(matches!(
        problem(&empty),
        (k, ProblemKind::Policy(PolicyError::EmptyWindow { .. })) if k == "hand_back.window_end"
    ));
}

#[test]
fn tuning_tables_are_checked() {
    let text = FULL
        .replace("max_pending = 100", "max_pending = 0")
        .replace("batch = 64", "batch = -1")
        .replace("max_frame = 65536", "max_frame = 100")
        .replace("keepalive_ms = 100", "keepalive_ms = 300")
        .replace("backoff_min_ms = 10", "backoff_min_ms = 600")
        .replace("seed = 9", "seed = \"nine\"");
    let got = problems(&text);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "node.max_pending",
            "node.seed",
            "runtime.batch",
            "limits.max_frame",
            "limits.idle_timeout_ms",
            "limits.backoff_min_ms",
        ]
    );
    assert!(matches!(got[3].1, ProblemKind::FrameLimit { .. }));
    assert_eq!(got[4].1, ProblemKind::IdleBelowKeepalives);
    assert_eq!(got[5].1, ProblemKind::BackoffOrder);
}

#[test]
fn syntax_errors_give_line_and_column() {
    let text = "cluster_id = 1\n[[sites]\nname = \"x\"\n";
    match problem(text) {
        (k, ProblemKind::Syntax { line, column, .. }) => {
            assert_eq!(k, "");
            assert_eq!((line, column), (2, 8));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(&path, minimal([lo(7001), lo(7002), lo(7003)], 1, "")).unwrap();
    let cfg = MemberConfig::load(&path).unwrap();
    assert_eq!(cfg.data_dir, dir.path().join("d1"));

    std::fs::write(&path, "cluster_id = 1\nbogus = 2\n").unwrap();
    let e = MemberConfig::load(&path).unwrap_err();
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(e.to_string().contains("bogus: unknown key"), "{e}");

    let missing = dir.path().join("absent.toml");
    assert!(matches!(
        MemberConfig::load(&missing),
        Err(ConfigError::Read { path, .. }) if path == missing
    ));
}

/// Edits of a valid file: at `at` (modulo its length), delete, or insert
/// or overwrite with a character TOML cares about.
fn mutate(text: &str, edits: &[(u16, u8)]) -> String {
    const CHARS: &[char] = &[
        '=', '[', ']', '{', '}', '"', '\'', ',', '.', '\n', '#', ' ', '0', '9', '-', ':', 'a', 'é',
    ];
    let mut chars: Vec<char> = text.chars().collect();
    for &(at, what) in edits {
        if chars.is_empty() {
            break;
        }
        let at = usize::from(at) % chars.len();
        let c = CHARS[usize::from(what) % CHARS.len()];
        match what % 3 {
            0 => {
                chars.remove(at);
            }
            1 => chars.insert(at, c),
            _ => chars[at] = c,
        }
    }
    chars.into_iter().collect()
}

/// Whatever the text, the parser answers (no panic) and an error names
/// at least one problem, each with a message.
fn answers(text: &str) -> bool {
    match parse(text) {
        Ok(_) => true,
        Err(e) => {
            !e.problems().is_empty() && e.problems().iter().all(|p| !p.to_string().is_empty())
        }
    }
}

#[test]
fn no_text_makes_the_parser_panic() {
    fn random(text: String) -> bool {
        answers(&text)
    }
    fn mutated(edits: Vec<(u16, u8)>) -> TestResult {
        let base = minimal(
            [lo(7001), lo(7002), lo(7003)],
            1,
            "[node]\nkeep_entries = 9\n",
        );
        let full = if edits.len() % 2 == 0 {
            FULL.to_string()
        } else {
            base
        };
        TestResult::from_bool(answers(&mutate(&full, &edits)))
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(random as fn(String) -> bool);
    QuickCheck::new()
        .tests(3000)
        .quickcheck(mutated as fn(Vec<(u16, u8)>) -> TestResult);
}

/// Remembers the commands applied.
#[derive(Default)]
struct Log(Vec<Vec<u8>>);

impl StateMachine for Log {
    fn apply(&mut self, _: u64, command: &[u8]) -> Vec<u8> {
        self.0.push(command.to_vec());
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.len().to_le_bytes().to_vec()
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), RestoreError> {
        Ok(())
    }
}

/// Three members read from files and started on in-memory stores: the
/// file's `[node]` settings reach each node (its command limit refuses a
/// longer command, its snapshots compact the log), which they could not
/// through `start_member` before.
#[test]
fn file_settings_reach_members_started_on_mem_storage() {
    let addrs = [0, 1, 2].map(|_| survivable_core::transport::free_loopback_addr().unwrap());
    let node = "[node]\nmax_command_len = 64\nsnapshot_every = 5\nkeep_entries = 2\n";
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let members: Vec<_> = (1..=3)
        .map(|id| {
            let cfg = parse(&minimal(addrs, id, node)).unwrap();
            assert_eq!(cfg.node.max_command_len, 64);
            start_member_with_storage(cfg, MemStorage::new(), Log::default(), &logger).unwrap()
        })
        .collect();
    let h = &members[0].handle;
    // Proposals at member 1 are forwarded to whichever member leads; the
    // first waits for an election (a few election timeouts of 200 ms).
    h.propose_timeout(b"first".to_vec(), Duration::from_secs(10))
        .unwrap();
    match h.propose(vec![b'x'; 65]) {
        Err(ProposeError::TooLarge { len: 65, max: 64 }) => {}
        other => panic!("{other:?}"),
    }
    for i in 0..20 {
        h.propose(format!("c{i}").into_bytes()).unwrap();
    }
    // 21 entries applied, a snapshot every 5 keeping 2 behind it: the log
    // no longer starts at 1 (with the defaults, 1024 and 256, it would).
    // Snapshots are taken and compacted after the applies, so the wait is
    // for the asserted condition itself: an earlier compaction (to 10, say)
    // may be seen before the later ones land.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.status().first_index <= 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.status().first_index > 10, "{:?}", h.status());
    for m in &members {
        m.handle.shutdown();
    }
}

/// A DR auto-sync file: Denver's pair and tie-breaker, Paris's pair.
fn dr_file(timers: &str) -> String {
    format!(
        r#"cluster_id = 2026
mode = "dr-auto-sync"
[[sites]]
name = "denver"
main = true
[[sites]]
name = "paris"
[[cores]]
name = "cm01"
site = "denver"
members = [
  {{ id = 1, name = "CM01a", host = "h1", addr = "127.0.0.1:7101" }},
  {{ id = 2, name = "CM01b", host = "h2", addr = "127.0.0.1:7102" }},
]
[[cores]]
name = "cm02"
site = "paris"
rank = 1
members = [
  {{ id = 3, name = "CM02a", host = "h3", addr = "127.0.0.1:7103" }},
  {{ id = 4, name = "CM02b", host = "h4", addr = "127.0.0.1:7104" }},
]
[[witnesses]]
id = 5
name = "TB"
site = "denver"
host = "h5"
addr = "127.0.0.1:7105"
[timers]
{timers}
[member]
id = 3
data_dir = "d3"
insecure_plaintext_loopback_only = true
"#
    )
}

#[test]
fn a_dr_auto_sync_file_reads_its_sync_wait_and_is_checked_at_the_key() {
    let cfg = parse(&dr_file("sync_wait_ms = 6000")).unwrap();
    assert_eq!(cfg.topology.mode(), QuorumMode::DrAutoSync);
    assert_eq!(cfg.topology.timers().sync_wait, ms(6000));
    assert_eq!(cfg.topology.voters().len(), 5);
    // Left out: the default 4 s.
    let cfg = parse(&dr_file("")).unwrap();
    assert_eq!(cfg.topology.timers().sync_wait, Timers::default().sync_wait);
    // Too short for the takeover's lease (2000 + 200 + 50 ms to outlast).
    let (key, kind) = problem(&dr_file("sync_wait_ms = 2000"));
    assert_eq!(key, "timers.sync_wait_ms");
    match kind {
        ProblemKind::Topology(TopologyError::DrSyncWaitTooShort {
            sync_wait, need, ..
        }) => {
            assert_eq!((sync_wait, need), (ms(2000), ms(2285)));
        }
        other => panic!("{other:?}"),
    }
    // A third site.
    let third = dr_file("").replace(
        "[[cores]]\nname = \"cm01\"",
        "[[sites]]\nname = \"kansas\"\n[[cores]]\nname = \"cm01\"",
    );
    let (key, kind) = problem(&third);
    assert_eq!(key, "sites");
    assert!(
        matches!(
            kind,
            ProblemKind::Topology(TopologyError::DrNeedsTwoSites { count: 3, .. })
        ),
        "{kind:?}"
    );
    // The tie-breaker in Paris.
    let away = dr_file("").replace(
        "site = \"denver\"\nhost = \"h5\"",
        "site = \"paris\"\nhost = \"h5\"",
    );
    let (key, kind) = problem(&away);
    assert_eq!(key, "witnesses[0].site");
    assert!(
        matches!(
            kind,
            ProblemKind::Topology(TopologyError::WitnessOutsideMainSite { .. })
        ),
        "{kind:?}"
    );
    // In another mode the key is refused as unused.
    let witness =
        dr_file("sync_wait_ms = 6000").replace("mode = \"dr-auto-sync\"", "mode = \"main-site\"");
    let (key, kind) = problem(&witness);
    assert_eq!(key, "timers.sync_wait_ms");
    assert!(matches!(kind, ProblemKind::Unused { .. }), "{kind:?}");
}
