//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! same library entry points the fuzz targets call, on stable Rust, so
//! every `cargo test` re-checks every input a fuzzer ever kept or crashed on.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
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

#[test]
fn wire_decode_corpus() {
    let inputs = corpus("wire_decode");
    assert!(inputs.len() >= 5, "the seed corpus is missing");
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| survivable_core::fuzzing::wire_decode(&data));
        assert!(r.is_ok(), "{} panicked", path.display());
    }
}

#[test]
fn partition_schedule_corpus() {
    let inputs = corpus("partition_schedule");
    assert!(inputs.len() >= 5, "the seed corpus is missing");
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| survivable_core::fuzzing::partition_schedule(&data));
        assert!(r.is_ok(), "{} broke an invariant", path.display());
    }
}

#[test]
fn two_site_schedule_corpus() {
    let inputs = corpus("two_site_schedule");
    assert!(inputs.len() >= 5, "the seed corpus is missing");
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| survivable_core::fuzzing::two_site_schedule(&data));
        assert!(r.is_ok(), "{} broke an invariant", path.display());
    }
}
