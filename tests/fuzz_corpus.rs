//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/*`) and any
//! crash a local fuzzer left (`fuzz/artifacts/<target>/*`) through the same
//! library entry points the fuzz targets call, on stable Rust, so every
//! `cargo test` re-checks every input a fuzzer ever kept or crashed on.
//!
//! A failing schedule target prints its schedule line; replay it exactly as
//! the target ran it with
//! `FUZZ_TARGET=<target> FUZZ_REPLAY='<line>' cargo test --test fuzz_corpus replay -- --nocapture`.

use std::path::{Path, PathBuf};

use survivable_core::fuzzing;

/// Every file under `fuzz/<kind>/<target>/` (none if the directory does
/// not exist), sorted.
fn inputs_under(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("readable")))
        .collect()
}

/// The seed corpus of `target` (which must be there), then its artifacts.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let corpus = inputs_under("corpus", target);
    assert!(corpus.len() >= 5, "the seed corpus of {target} is missing");
    let artifacts = inputs_under("artifacts", target);
    if !artifacts.is_empty() {
        println!("{target}: replaying {} artifacts", artifacts.len());
    }
    corpus.into_iter().chain(artifacts).collect()
}

fn replay_all(target: &str, run: fn(&[u8])) {
    for (path, data) in inputs(target) {
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{} failed", path.display());
    }
}

#[test]
fn wire_decode_corpus() {
    replay_all("wire_decode", fuzzing::wire_decode);
}

#[test]
fn partition_schedule_corpus() {
    replay_all("partition_schedule", fuzzing::partition_schedule);
}

#[test]
fn two_site_schedule_corpus() {
    replay_all("two_site_schedule", fuzzing::two_site_schedule);
}

#[test]
fn dr_schedule_corpus() {
    replay_all("dr_schedule", fuzzing::dr_schedule);
}

/// The DR schedules the seed corpus of `dr_schedule` stands for (each file
/// is named for what it plays).
#[test]
fn the_dr_seed_corpus_stands_for_the_same_schedules() {
    let expect = [("seed-0", "wan=5ms/5ms; seed=0")];
    for (file, line) in expect {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/dr_schedule")
            .join(file);
        let data = std::fs::read(&path).expect("a seed file");
        let s = fuzzing::fuzz_dr_schedule(&data).expect("a DR schedule");
        assert_eq!(s.to_string(), line, "{file}");
    }
}

/// The schedules the seed corpus stands for. Generator changes must keep
/// them (re-encode the files with `Schedule::to_fuzz_input` if the byte
/// layout changes), so the corpus keeps replaying the same runs.
#[test]
fn the_seed_corpus_stands_for_the_same_schedules() {
    let expect = [
        ("partition_schedule/seed-0", "seed=0"),
        ("partition_schedule/seed-1", "seed=16919876381523211949"),
        ("partition_schedule/seed-2", "seed=18383587013465312907; +6028ms crash-site kansas; +6878ms rate 428/s"),
        ("partition_schedule/seed-3", "seed=2356237983602830426; +1843ms crash n3; +5767ms restart n1; +4504ms pause n4"),
        ("partition_schedule/seed-4", "seed=15336172127719472955; +4108ms rate 50/s; +1470ms heal; +1105ms crash-site denver; +5304ms loss n4 n1 41%; +4320ms crash-site paris; +2546ms crash-site denver; +1361ms restart n1; +314ms crash-site kansas; +2305ms restart n4; +2367ms crash n5; +2616ms restart-site kansas"),
        ("partition_schedule/seed-5", "seed=13115129475110239065"),
        ("two_site_schedule/seed-0", "seed=106646012964254883; +6482ms partition denver|paris; +1531ms pause n3"),
        ("two_site_schedule/seed-1", "seed=15653386182280670394; +4094ms crash-site denver; +5247ms crash-site paris; +5505ms rate 106/s; +5561ms delay n3 n1 302ms"),
        ("two_site_schedule/seed-2", "seed=3091439871209130706; +313ms restart n3; +6666ms crash n1; +317ms crash n3; +1298ms restart n4; +4803ms restart n1; +3014ms restart n3; +1846ms resume n3; +6833ms resume n1; +0ms crash n1; +0ms crash n1"),
        ("two_site_schedule/seed-3", "seed=18320263843573920525; +6348ms isolate n3; +4261ms restart n1; +4235ms crash n1; +0ms crash n1"),
        ("two_site_schedule/seed-4", "seed=4758887951836387160; +2000ms crash n5; +3797ms restart n1; +2326ms crash n2; +6916ms resume n5; +6413ms partition denver|paris; +2737ms rate 389/s; +4019ms crash n3"),
        ("two_site_schedule/seed-5", "seed=10320120266846637405; +6533ms isolate n2; +2605ms heal; +5853ms partition denver|paris; +5983ms pause n3; +6301ms crash-site paris"),
        ("two_site_schedule/seed-6", "seed=4340998595586404106; +563ms crash n5; +7610ms partition denver|paris; +2363ms pause n1; +4733ms skew n5 235%; +3314ms partition denver|paris; +4337ms restart n1"),
        ("two_site_schedule/seed-7", "seed=10563075636364418693"),
    ];
    for (file, line) in expect {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(file);
        let data = std::fs::read(&path).expect("a seed file");
        let topology = if file.starts_with("two_site") {
            fuzzing::two_site_topology()
        } else {
            fuzzing::witness_topology()
        };
        let mut u = arbitrary::Unstructured::new(&data);
        let s = survivable_core::sim::Schedule::arbitrary_for(&mut u, &topology).unwrap();
        assert_eq!(s.to_string(), line, "{file}");
    }
}

/// The line a failing target prints replays the very run it made.
#[test]
fn a_printed_line_replays_the_fuzzed_run() {
    let (_, data) = inputs_under("corpus", "two_site_schedule")
        .into_iter()
        .max_by_key(|(_, d)| d.len())
        .expect("a seed");
    let topology = fuzzing::two_site_topology();
    let schedule = fuzzing::fuzz_schedule(&topology, &data).expect("a schedule");
    assert!(!schedule.steps.is_empty());
    let fuzzed = schedule
        .run(topology, &fuzzing::run_options())
        .expect("valid");
    let replayed = fuzzing::replay_two_site_schedule(&schedule.to_string()).expect("valid");
    assert_eq!(fuzzed.trace, replayed.trace);
    assert_eq!(fuzzed.violations, replayed.violations);
}

/// Replays the line in `FUZZ_REPLAY` as the target in `FUZZ_TARGET`
/// (`partition_schedule`, the default, `two_site_schedule` or
/// `dr_schedule`) ran it,
/// printing its trace and every member's status (a no-op without it).
#[test]
fn replay() {
    let Ok(line) = std::env::var("FUZZ_REPLAY") else {
        return;
    };
    let target = std::env::var("FUZZ_TARGET").unwrap_or_else(|_| "partition_schedule".into());
    let report = match target.as_str() {
        "partition_schedule" => fuzzing::replay_partition_schedule(&line),
        "two_site_schedule" => fuzzing::replay_two_site_schedule(&line),
        "dr_schedule" => fuzzing::replay_dr_schedule(&line),
        other => panic!(
            "FUZZ_TARGET={other}: expected partition_schedule, two_site_schedule or dr_schedule"
        ),
    }
    .expect("a valid schedule line");
    for l in &report.trace {
        println!("{l}");
    }
    for s in &report.status {
        println!("{s:?}");
    }
    let failing: Vec<_> = report.violations.iter().collect();
    assert!(failing.is_empty(), "{failing:?}");
}
