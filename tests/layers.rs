//! The crate's modules form layers, and a module uses only modules of lower
//! layers: the ones a user opens first (`policy`, `topology`, `ids`,
//! `state_machine`, `wire`, `storage`, `error`, `events`) depend on nothing
//! above them, the sans-IO `node` on nothing that does I/O, and no two
//! modules import each other (a strict order has no cycle).
//!
//! The check reads `src/` for paths `crate::<module>` outside comments; a
//! new top-level module must be given its layer here.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Every top-level module of `src/` and its layer (0 is the bottom).
const LAYERS: &[(&str, u32)] = &[
    ("manual", 0),
    ("policy", 0),
    ("replication", 0),
    ("rng", 0),
    ("topology", 1),
    ("ids", 2),
    ("state_machine", 3),
    ("storage", 3),
    ("wire", 3),
    ("error", 4),
    ("events", 4),
    ("node", 5),
    ("sim", 6),
    ("metrics", 6),
    ("transport", 6),
    ("runtime", 7),
    ("relay", 7),
    ("operator", 8),
    ("timeline", 7),
    ("fuzzing", 8),
    ("config", 8),
];

/// The crate root's re-exports (`pub use module::{A, B};` in lib.rs): name
/// → the module it comes from.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in lib.split(';') {
        let Some(at) = item.find("pub use ") else {
            continue;
        };
        let path = item[at + 8..].trim();
        let Some((module, names)) = path.split_once("::") else {
            continue;
        };
        let names = names.trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.rsplit("::").next().unwrap();
            out.insert(name.to_string(), module.to_string());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line: without a `//` comment (doc comments included, so
/// intra-doc links do not count as dependencies).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let roots = root_reexports(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "lib.rs" {
            continue;
        }
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(&layer) = layers.get(module) else {
            wrong.push(format!(
                "src/{rel}: module `{module}` has no layer in tests/layers.rs"
            ));
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code(line);
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used.is_empty() || used == module {
                    continue;
                }
                match layers.get(used.as_str()) {
                    Some(&l) if l < layer => {}
                    Some(&l) => wrong.push(format!(
                        "src/{rel}:{}: `{module}` (layer {layer}) uses `{used}` (layer {l})",
                        n + 1
                    )),
                    None => match roots.get(used.as_str()).and_then(|m| layers.get(m.as_str())) {
                        Some(&l) if l < layer => {}
                        Some(&l) => wrong.push(format!(
                            "src/{rel}:{}: `{module}` (layer {layer}) uses `crate::{used}` (layer {l})",
                            n + 1
                        )),
                        None => wrong.push(format!(
                            "src/{rel}:{}: `crate::{used}` is neither a module nor a root re-export",
                            n + 1
                        )),
                    },
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known: Vec<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    for entry in fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".rs");
        if module != "lib" {
            assert!(
                known.contains(&module),
                "src/{name}: give `{module}` a layer in tests/layers.rs"
            );
        }
    }
}
