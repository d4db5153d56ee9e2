//! The `node` example's binary, for the tests that run real processes.

use std::path::PathBuf;
use std::process::Command;

/// The `node` example next to this test binary, built now: cargo is asked
/// every time (it rebuilds only what changed), so the test never runs a
/// binary older than the sources. (`cargo test` has released its build lock
/// by the time tests run, so this does not wait on it.)
pub(crate) fn node_binary() -> PathBuf {
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
