//! One member as a real process, and a launcher that runs the Denver/Paris
//! cluster as five such processes on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example node -- cluster           # the launcher, narrated
//! cargo run --release --example node -- cluster --json    # one JSON object per step
//! cargo run --release --example node -- bench [--json]    # failover and throughput
//! cargo run --release --example node -- run --config m.toml
//! ```
//!
//! `run` starts the member described by a TOML file (the topology with every
//! member's address, plus this member's id and data directory; see
//! [`config`]) with durable storage and TCP, and takes commands on stdin,
//! one per line, answering with JSON lines on stdout:
//! `propose <tag> <command>` (e.g. `propose 7 set call-7 up`), `status`,
//! `dump` (the replicated key-value state), `hand-back`. Events are printed
//! as they happen. End of input stops the member.
//!
//! `cluster` writes one such file per member into a temporary directory,
//! starts the five processes, makes calls, then: kills the leader with
//! SIGKILL and restarts it from its data directory, cuts Denver off by
//! stopping its processes (SIGSTOP) so Paris takes over, and lets it
//! return (SIGCONT) so control is handed back.

mod bench;
mod config;
mod control;
mod launcher;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => match args.get(1..3) {
            Some([flag, path]) if flag == "--config" => control::run(path),
            _ => Err("usage: node run --config <member.toml>".to_string()),
        },
        Some("cluster") => launcher::run(args.iter().any(|a| a == "--json")),
        Some("bench") => bench::run(&args[1..]),
        _ => Err(
            "usage: node cluster [--json] | node bench [--json] [--trials N] [--secs S] | node run --config <member.toml>"
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
