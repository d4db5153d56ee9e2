//! One member as a real process, and a launcher that runs the Denver/Paris
//! cluster as five such processes on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example node -- cluster           # the launcher, narrated
//! cargo run --release --example node -- cluster --json    # one JSON object per step
//! cargo run --release --example node -- cluster --keep    # leave logs and data behind
//! cargo run --release --example node -- cluster --svg timeline.svg  # and draw who led when
//! cargo run --release --example node -- cluster --wan denver-paris=80,denver-kansas=40,paris-kansas=60
//! cargo run --release --example node -- cluster --mode dr-auto-sync --wan denver-paris=80 [--json]
//! cargo run --release --example node -- bench [--json] [--transport both]  # connections, throughput, failover
//! cargo run --release --example node -- bench --soak 60    # saturated, default timers: leadership changes
//! cargo run --release --example node -- bench --figures     # failovers, WAN cut, hand-back over the relay
//! cargo run --release --example node -- bench --against etcd  # throughput beside three etcd members
//! cargo run --release --example node -- bench --memory      # RSS per member over 1,000,000 commands
//! cargo run --release --example node -- jepsen [--seed N] [--secs 60]  # nemesis, then linearizability
//! cargo run --release --example node -- run --config m.toml
//! cargo run --release --example node -- certs <dir> [--cluster-id 2026] [--nodes 1,2,3,4,5] [--days 365] [--operator alice] [--ca-key <dir>-ca/ca.key]
//! cargo run --release --example node -- certs add <dir> --id 9 [--ca-key PATH] [--force]   # one more member, same CA
//! cargo run --release --example node -- ctl --endpoints 127.0.0.1:8001,127.0.0.1:8002 status   # see ctl.rs
//! ```
//!
//! `run` starts the member described by a TOML file (the topology with every
//! member's address, this member's id and data directory, and its TLS
//! files; see [`config`]) with durable storage and mutual TLS over TCP, and
//! takes commands on stdin,
//! one per line, answering with JSON lines on stdout:
//! `propose <tag> <command>` (e.g. `propose 7 set call-7 up`), `status`,
//! `dump` (the replicated key-value state, after a linearizable read point),
//! `get <tag> <key>` (one key's value, after a read point), `audit` (the
//! commands applied more than once, and a digest of the state and of each
//! command's apply count, equal on members that applied the same commands),
//! `hand-back`. Events are printed
//! as they happen. End of input stops the member.
//!
//! `certs` writes a new cluster CA (`ca.pem`) and, for each node, a key
//! (`node-<id>.key`) and a certificate (`node-<id>.pem`) naming it
//! (`survivable://<cluster-id>/node/<id>`), for the `[tls]` table of its
//! member file. The defaults are the Denver/Paris cluster's. The CA's
//! private key is written apart, to `<dir>-ca/ca.key` (or `--ca-key`), and
//! `certs add <dir> --id N` issues one more member's certificate from it
//! (a replacement or a spare); see [`certs`].
//!
//! `cluster` writes certificates and one member file per member into a
//! temporary directory, starts the five processes (mutual TLS between
//! them), makes calls, then: kills the leader with
//! SIGKILL and restarts it from its data directory, cuts Denver off at the
//! WAN so Paris takes over, and heals the cut so control is handed back.
//! Members of different sites reach each other through a relay
//! ([`survivable_core::relay`]) adding each pair of sites' latency
//! (`--wan`, round trips in ms; by default Denver–Paris 80, Denver–Kansas
//! 40, Paris–Kansas 60), where the WAN cuts are made: connections stay
//! open and bytes sent across a cut arrive after the heal.
//!
//! `cluster --mode dr-auto-sync` runs DR auto-sync instead (member 5 is TB,
//! a tie-breaker on Denver's LAN; two sites, `--wan denver-paris=RTT`):
//! steady `Sync`, a WAN cut (`Async` at Denver), its heal (`Sync` again),
//! then Denver lost in `Sync` (Paris activates, RPO 0 proven); see
//! `dr_cluster.rs`.

mod bench;
mod certs;
mod config;
mod control;
mod ctl;
mod disk;
mod etcd;
mod failover;
mod jepsen;
mod launcher;
mod memory;
mod pki;
mod soak;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => match args.get(1..3) {
            Some([flag, path]) if flag == "--config" => control::run(path),
            _ => Err("usage: node run --config <member.toml>".to_string()),
        },
        Some("cluster") => flag(&args, "--wan").and_then(|wan| {
            let mode = launcher::parse_mode(flag(&args, "--mode")?.as_deref())?;
            launcher::run(
                args.iter().any(|a| a == "--json"),
                args.iter().any(|a| a == "--keep"),
                wan.as_deref().unwrap_or(launcher::default_wan(mode)),
                flag(&args, "--svg")?.as_deref(),
                mode,
            )
        }),
        Some("bench") => bench::run(&args[1..]),
        Some("jepsen") => jepsen::Options::parse(&args[1..]).and_then(|o| jepsen::run(&o)),
        Some("certs") => certs::run(&args[1..]),
        Some("ctl") => ctl::run(&args[1..]),
        _ => Err(
            "usage: node cluster [--json] [--keep] [--svg FILE] [--wan denver-paris=80,denver-kansas=40,paris-kansas=60|none] [--mode witness|dr-auto-sync] | node bench [--json] [--trials N] [--load-secs S] [--secs S] [--transport tls|plaintext|both] [--snapshot-every N] [--against etcd] [--keep] | node bench --memory [--commands N] [--window W] | node bench --soak S [--wan SPEC] | node bench --figures [--trials N] [--wan SPEC] | node jepsen [--seed N] [--secs S] [--wan SPEC] [--keep] | node run --config <member.toml> | node certs <dir> [--cluster-id N] [--nodes 1,2,...] [--days D] [--operator NAME] [--ca-key PATH] | node certs add <dir> (--id N | --operator NAME) [--ca-key PATH] [--force] | node ctl [--endpoints host:port,...] <status|leader|hand-back|transfer ID|activate|drain EP|undrain>"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `name` in `args`, if the flag is given.
fn flag(args: &[String], name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("{name} needs a value")),
    }
}
