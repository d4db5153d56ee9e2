//! The Denver/Paris cluster as five real processes (`examples/node`) on
//! 127.0.0.1 with durable storage, the sites joined through the relay
//! (`survivable_core::relay`) with uneven latencies (Denver–Paris 80 ms,
//! Denver–Kansas 40 ms, Paris–Kansas 60 ms round trips): the leader's
//! process is killed with SIGKILL and restarted from its data directory,
//! the WAN cuts Denver off (connections stay open, bytes are held) and
//! heals. Every step must keep every acknowledged call, and control must
//! come home. Then the same in DR auto-sync mode (`--mode dr-auto-sync`,
//! TB on Denver's LAN): `Sync`, a WAN cut (`Async`), its heal (`Sync`
//! again), Denver lost in `Sync` (Paris activates with RPO 0 proven).

use std::process::Command;
use std::sync::Mutex;

#[path = "support/node_binary.rs"]
mod node_binary;
use node_binary::node_binary;

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 3..];
    let rest = rest.trim_start_matches('"');
    &rest[..rest.find(['"', ',', '}']).unwrap_or(rest.len())]
}

/// One cluster at a time: five processes each on a shared machine, and
/// the steps' timers assume the machine is theirs.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// The launcher's step lines for `args` (it must succeed).
fn run_cluster(args: &[&str]) -> String {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(node_binary())
        .args(args)
        .output()
        .expect("the launcher runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "launcher failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn step_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("{\"step\""))
        .collect()
}

#[test]
fn kill_restart_cut_off_and_return_with_real_processes() {
    let stdout = run_cluster(&["cluster", "--json"]);
    let steps = step_lines(&stdout);
    let names: Vec<&str> = steps.iter().map(|l| field(l, "step")).collect();
    assert_eq!(
        names,
        [
            "normal",
            "duplication_failover",
            "primary_restarted",
            "wan_partition",
            "hand_back"
        ]
    );
    for l in &steps {
        assert_eq!(field(l, "committed_lost"), "0", "{l}");
        assert_eq!(field(l, "calls_dropped"), "0", "{l}");
    }
    // Denver's pair leads, and the partner of the killed leader takes over
    // (CM01a and CM01b, unless a stall moved leadership inside the pair
    // before the kill).
    assert_eq!(field(steps[0], "leader_site"), "denver");
    assert_eq!(field(steps[1], "leader_site"), "denver");
    assert_ne!(
        field(steps[1], "leader_node"),
        field(steps[0], "leader_node")
    );
    assert_eq!(field(steps[2], "leader_site"), "denver");
    assert_eq!(field(steps[3], "leader_site"), "paris");
    assert_eq!(field(steps[4], "leader_site"), "denver");
    assert_eq!(field(steps[4], "failed_proposals"), "0");
    // How fast is `node bench`'s to measure; here only that it happened.
    assert_ne!(field(steps[1], "takeover_ms"), "null", "{}", steps[1]);
}

#[test]
fn dr_auto_sync_cut_heal_and_denver_lost_with_real_processes() {
    let stdout = run_cluster(&["cluster", "--mode", "dr-auto-sync", "--json"]);
    let steps = step_lines(&stdout);
    let names: Vec<&str> = steps.iter().map(|l| field(l, "step")).collect();
    assert_eq!(names, ["sync", "wan_cut", "heal", "denver_lost"]);
    for l in &steps {
        assert_eq!(field(l, "committed_lost"), "0", "{l}");
        assert_eq!(field(l, "calls_dropped"), "0", "{l}");
    }
    let states: Vec<&str> = steps
        .iter()
        .map(|l| field(l, "replication_state"))
        .collect();
    // The last is Paris's leader, in its own epoch without Denver.
    assert_eq!(states, ["sync", "async", "sync", "async"], "{stdout}");
    let sites: Vec<&str> = steps.iter().map(|l| field(l, "leader_site")).collect();
    assert_eq!(sites, ["denver", "denver", "denver", "paris"], "{stdout}");
    assert_ne!(field(steps[1], "to_async_ms"), "null", "{}", steps[1]);
    assert_eq!(field(steps[3], "state_at_loss"), "sync", "{}", steps[3]);
    assert_eq!(
        field(steps[3], "activation_rpo_proven"),
        "true",
        "{}",
        steps[3]
    );
}
