//! The Denver/Paris cluster as five real processes (`examples/node`) on
//! 127.0.0.1 with durable storage: the leader's process is killed with
//! SIGKILL and restarted from its data directory, Denver's processes are
//! stopped and resumed. Every step must keep every acknowledged call, and
//! control must come home.

use std::path::PathBuf;
use std::process::Command;

/// The `node` example next to this test binary, built now: cargo is asked
/// every time (it rebuilds only what changed), so the test never runs a
/// binary older than the sources. (`cargo test` has released its build lock
/// by the time tests run, so this does not wait on it.)
fn node_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--example", "node", "--target-dir"])
        .arg(target_dir);
    // What cargo set for this test binary is not the caller's environment:
    // build scripts that watch it (ring's watches CARGO_PKG_NAME) would
    // rebuild every time the example is built from here and by hand in turn.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ];
        if set_by_cargo.iter().any(|p| key_str.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building examples/node failed");
    profile_dir.join("examples").join("node")
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 3..];
    let rest = rest.trim_start_matches('"');
    &rest[..rest.find(['"', ',', '}']).unwrap_or(rest.len())]
}

#[test]
fn kill_restart_cut_off_and_return_with_real_processes() {
    let out = Command::new(node_binary())
        .args(["cluster", "--json"])
        .output()
        .expect("the launcher runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "launcher failed:\n{stdout}\n{stderr}");
    let steps: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"step\""))
        .collect();
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
