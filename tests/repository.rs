//! Keeps the repository honest about itself:
//!
//! - no source or documentation file cites a document that is not in the
//!   repository (the design brief or the raft-rs notes it was written
//!   from): the reasoning lives in `docs/`, rendered as
//!   `survivable_core::manual`, and code points there;
//! - no source file under `src/` grows past [`MAX_LINES`] lines, and no
//!   function under `src/` or `examples/` past [`MAX_FN_LINES`];
//! - README.md's `## Layout` section names every source file under `src/`
//!   (or a directory entry ending in `/**` that covers it), and names no
//!   source file that does not exist.
//!
//! Each failure names the file and what to do about it.

use std::fs;
use std::path::{Path, PathBuf};

/// The most lines a file under `src/` may have.
const MAX_LINES: usize = 800;

/// The most lines a function under `src/` or `examples/` may span, from
/// its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 100;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file below `dir` (recursively), sorted; nothing if it is absent.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `path` relative to the repository root, with `/` separators.
fn shown(path: &Path) -> String {
    let rel = path.strip_prefix(root()).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `.rs` file under `src/`, as its path relative to `src/`.
fn src_files() -> Vec<String> {
    let src = root().join("src");
    files_below(&src)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| shown(&p)["src/".len()..].to_string())
        .collect()
}

#[test]
fn nothing_cites_documents_outside_the_repository() {
    // Spelled in pieces so this file does not cite them itself.
    let cited = [
        ["DESIGN", " §"].concat(),
        ["DESIGN", ".md"].concat(),
        ["raft-rs-0.7", "-facts"].concat(),
    ];
    let r = root();
    let mut scanned: Vec<PathBuf> = ["src", "tests", "examples", "benches", "docs"]
        .iter()
        .flat_map(|d| files_below(&r.join(d)))
        .chain(files_below(&r.join("fuzz").join("fuzz_targets")))
        .collect();
    scanned.push(r.join("README.md"));
    scanned.push(r.join("fuzz").join("README.md"));
    let mut found = Vec::new();
    for path in &scanned {
        let Ok(bytes) = fs::read(path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            for c in &cited {
                if line.contains(c.as_str()) {
                    found.push(format!(
                        "{}:{}: cites {c:?}: {}",
                        shown(path),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "documents outside the repository are cited (write the reasoning into docs/, \
         i.e. survivable_core::manual, and point there; CHANGELOG.md is exempt):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let src = root().join("src");
    let mut long = Vec::new();
    for rel in src_files() {
        let path = src.join(&rel);
        let text = fs::read_to_string(&path).expect("a readable source file");
        let lines = text.lines().count();
        if lines > MAX_LINES {
            long.push(format!("src/{rel}: {lines} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines (split them by content):\n{}",
        long.join("\n")
    );
}

/// The text of README.md's `## Layout` section.
fn layout_section() -> String {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("\n## Layout\n")
        .expect("README.md has a `## Layout` section");
    let body = &readme[start + "\n## Layout\n".len()..];
    let end = body.find("\n## ").unwrap_or(body.len());
    body[..end].to_string()
}

/// The code spans of `text` (between single backticks).
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_layout_names_every_source_file() {
    let layout = layout_section();
    // Entries, relative to `src/`: files, and directories ending in `/**`.
    let entries: Vec<String> = code_spans(&layout)
        .into_iter()
        .filter_map(|s| s.strip_prefix("src/").map(str::to_string))
        .collect();
    let dirs: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.strip_suffix("**"))
        .collect();
    let files = src_files();
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !entries.contains(f) && !dirs.iter().any(|d| f.starts_with(d)))
        .map(|f| {
            format!(
                "src/{f} is not in README.md's `## Layout`: add a line \
                 \"- `src/{f}`: what it holds\" (or a `src/<dir>/**` entry covering it)"
            )
        })
        .collect();
    let stale: Vec<String> = entries
        .iter()
        .filter(|e| e.ends_with(".rs") && !files.contains(e))
        .map(|e| {
            format!(
                "README.md's `## Layout` names src/{e}, which does not exist: remove or rename it"
            )
        })
        .collect();
    let dead_dirs: Vec<String> = dirs
        .iter()
        .filter(|d| !files.iter().any(|f| f.starts_with(*d)))
        .map(|d| format!("README.md's `## Layout` names src/{d}**, which holds no file: remove it"))
        .collect();
    let problems: Vec<String> = missing.into_iter().chain(stale).chain(dead_dirs).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The code of a line for brace counting: string and char literals and
/// `//` comments blanked (a rough lexer, enough for this code base).
fn braces_of(line: &str) -> i64 {
    let mut depth = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A char literal ('{', '\'') or a lifetime ('a): skip a
                // literal only when it closes within three characters.
                let rest: String = chars.clone().take(3).collect();
                if let Some(end) = rest.find('\'') {
                    if end > 0 {
                        for _ in 0..=end {
                            chars.next();
                        }
                    }
                }
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Whether `line` starts a function item (`fn`, `pub fn`, `pub(crate) const fn`, ...).
fn starts_fn(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let name = rest.strip_prefix("fn ")?;
    Some(name.split(['(', '<']).next().unwrap_or(name))
}

#[test]
fn no_function_is_over_the_line_limit() {
    let mut long = Vec::new();
    for dir in ["src", "examples"] {
        for path in files_below(&root().join(dir)) {
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (start, line) in lines.iter().enumerate() {
                let Some(name) = starts_fn(line) else {
                    continue;
                };
                let mut depth = 0;
                let mut opened = false;
                for (end, l) in lines.iter().enumerate().skip(start) {
                    if !opened && l.contains(';') && !l.contains('{') {
                        break; // a declaration without a body
                    }
                    depth += braces_of(l);
                    opened |= l.contains('{');
                    if opened && depth <= 0 {
                        let span = end - start + 1;
                        if span > MAX_FN_LINES {
                            long.push(format!(
                                "{}:{}: fn {name} spans {span} lines (at most {MAX_FN_LINES}): split it",
                                shown(&path),
                                start + 1
                            ));
                        }
                        break;
                    }
                }
            }
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}
