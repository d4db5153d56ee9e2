//! A Jepsen-style test on real processes: five `node run` members over the
//! relay with uneven WAN latencies (Denver–Paris 80 ms, Denver–Kansas
//! 40 ms, Paris–Kansas 60 ms round trips), two clients at every member
//! writing and reading five registers, and a random nemesis (both-way and
//! one-way WAN cuts, a site cut off, connection resets, kill -9 and
//! restart, SIGSTOP pauses) for `JEPSEN_SECS` (default 60) seconds. Then
//! every fault is healed and `node jepsen` judges the run: the history
//! linearizable (the crate's checker), every acknowledged write applied
//! exactly once on every member (each member counts applies per command),
//! no write applied that no client made, the members identical.
//!
//! The seed is random unless `JEPSEN_SEED` is set, and printed with the
//! nemesis schedule: `JEPSEN_SEED=N cargo test --test jepsen -- --nocapture`
//! (or `cargo run --example node -- jepsen --seed N`) replays the faults.

use std::process::Command;

#[path = "support/node_binary.rs"]
mod node_binary;
use node_binary::node_binary;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

#[test]
fn random_faults_keep_histories_linearizable_and_writes_exactly_once() {
    let seed = env_u64("JEPSEN_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
    });
    let secs = env_u64("JEPSEN_SECS").unwrap_or(60);
    eprintln!("jepsen: seed {seed}, {secs} s of faults; replay with JEPSEN_SEED={seed}");
    let out = Command::new(node_binary())
        .args([
            "jepsen",
            "--seed",
            &seed.to_string(),
            "--secs",
            &secs.to_string(),
        ])
        .output()
        .expect("node jepsen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The schedule and the verdict, for whoever reads the test's output.
    eprintln!("{stdout}");
    let verdict = stdout
        .lines()
        .find(|l| l.contains("\"jepsen\":\"verdict\""))
        .unwrap_or_else(|| panic!("no verdict (seed {seed}):\n{stdout}\n{stderr}"));
    for (key, want) in [
        ("linearizable", "true"),
        ("lost", "0"),
        ("duplicated", "0"),
        ("phantom", "0"),
        ("members_identical", "true"),
        ("ok", "true"),
    ] {
        let got = verdict
            .split(&format!("\"{key}\":"))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next());
        assert_eq!(
            got,
            Some(want),
            "{key} (seed {seed}; replay with JEPSEN_SEED={seed}):\n{verdict}\n{stderr}"
        );
    }
    // A run where nothing was acknowledged proves nothing.
    assert!(!verdict.contains("\"acked_writes\":0,"), "{verdict}");
    assert!(out.status.success(), "seed {seed}:\n{stderr}");
}
