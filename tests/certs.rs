//! `node certs` as an operator runs it (the real `node` binary): the CA key
//! is written apart from members' files, `node certs add` issues one more
//! member's certificate from the existing CA, and a running mutual-TLS
//! member accepts that certificate (and refuses one from another CA).

#[path = "support/node_binary.rs"]
mod node_binary;
mod support;

use std::path::Path;
use std::process::Command;

use rustls::pki_types::{pem::PemObject, CertificateDer};
use support::{Cluster, CLUSTER, CM02A, CM02B};
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    CertifiedAs, Dialer, PeerIdentity, TcpConfig, TlsFiles, TransportError, TransportSecurity,
};

/// Runs `node certs <args>`: (success, stdout + stderr).
fn certs(args: &[&str]) -> (bool, String) {
    let out = Command::new(node_binary::node_binary())
        .arg("certs")
        .args(args)
        .output()
        .expect("the node binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn named(cert: &Path) -> Option<PeerIdentity> {
    CertifiedAs::of_der(&CertificateDer::from_pem_file(cert).ok()?).peer()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_ca_key_is_kept_apart_and_add_issues_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let (ok, out) = certs(&[s(&pki), "--nodes", "1,2"]);
    assert!(ok, "{out}");
    let key = tmp.path().join("pki-ca").join("ca.key");
    assert!(key.exists(), "no CA key at {}: {out}", key.display());
    #[cfg(unix)]
    {
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(key.parent().unwrap()), 0o700);
    }
    let in_dir: Vec<String> = std::fs::read_dir(&pki)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !in_dir.iter().any(|f| f.starts_with("ca.") && f != "ca.pem"),
        "{in_dir:?}"
    );

    // One more member from the same CA; the cluster id comes from the
    // existing certificates.
    let (ok, out) = certs(&["add", s(&pki), "--id", "9"]);
    assert!(ok, "{out}");
    let cert9 = pki.join("node-9.pem");
    assert_eq!(named(&cert9), Some(PeerIdentity::new(2026, NodeId(9))));
    #[cfg(unix)]
    assert_eq!(mode(&pki.join("node-9.key")), 0o600);

    // Refusals, each saying what to do; nothing is overwritten.
    let before = std::fs::read(&cert9).unwrap();
    let (ok, out) = certs(&["add", s(&pki), "--id", "9"]);
    assert!(!ok && out.contains("--force"), "{out}");
    assert_eq!(std::fs::read(&cert9).unwrap(), before);
    let (ok, out) = certs(&[s(&pki)]);
    assert!(!ok && out.contains("certs add"), "{out}");
    let inside = pki.join("ca.key");
    let (ok, out) = certs(&["add", s(&pki), "--id", "10", "--ca-key", s(&inside)]);
    assert!(!ok && out.contains("must not be inside"), "{out}");
    let (ok, out) = certs(&["add", s(&pki), "--id", "10", "--operator", "x"]);
    assert!(!ok && out.contains("exactly one"), "{out}");
    let (ok, out) = certs(&["add", s(&pki), "--id", "zero"]);
    assert!(!ok && out.contains("whole number"), "{out}");

    // Another CA's key does not belong to this ca.pem.
    let other = tmp.path().join("other");
    assert!(certs(&[s(&other), "--nodes", "1"]).0);
    let other_key = tmp.path().join("other-ca").join("ca.key");
    let (ok, out) = certs(&["add", s(&pki), "--id", "10", "--ca-key", s(&other_key)]);
    assert!(!ok && out.contains("does not belong"), "{out}");
    assert!(!pki.join("node-10.pem").exists());

    // --force re-issues; an operator certificate from the same CA.
    let (ok, out) = certs(&["add", s(&pki), "--id", "9", "--force"]);
    assert!(ok, "{out}");
    assert_ne!(std::fs::read(&cert9).unwrap(), before);
    let (ok, out) = certs(&["add", s(&pki), "--operator", "alice"]);
    assert!(ok, "{out}");
    assert!(pki.join("operator-alice.pem").exists());
}

/// A dialer speaking as CM02b with these files (refused at once if its
/// own certificate is not of the CA it trusts).
fn dialer(c: &Cluster, files: TlsFiles) -> Result<Dialer, TransportError> {
    let cfg = TcpConfig::new(
        CLUSTER,
        CM02B,
        support::free_addr(),
        c.peers_of(CM02B),
        TransportSecurity::MutualTls(files),
    );
    Dialer::new(cfg)
}

#[test]
fn a_running_member_accepts_a_certificate_issued_by_add() {
    let c = Cluster::new();
    c.settled(CM02A);
    // The test cluster's CA was made in-process; write its key where
    // `node certs` keeps it.
    let pki = c.pki_dir();
    let key = pki.with_file_name("pki-ca").join("ca.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, c.ca.as_ref().unwrap().key_pem()).unwrap();
    let old = std::fs::read(c.files(CM02B).cert).unwrap();
    let (ok, out) = certs(&["add", s(&pki), "--id", "4", "--force"]);
    assert!(ok, "{out}");
    assert_ne!(std::fs::read(c.files(CM02B).cert).unwrap(), old);
    assert_eq!(
        dialer(&c, c.files(CM02B))
            .unwrap()
            .check(CM02A, c.addrs[&CM02A]),
        Ok(PeerIdentity::new(CLUSTER, CM02A))
    );

    // The same member's certificate from a CA of its own is refused.
    let rogue = c.dir.path().join("rogue");
    let (ok, out) = certs(&[s(&rogue), "--nodes", "4"]);
    assert!(ok, "{out}");
    let files = TlsFiles::new(
        c.files(CM02B).ca,
        rogue.join("node-4.pem"),
        rogue.join("node-4.key"),
    );
    match dialer(&c, files) {
        Err(TransportError::OwnCertificate { .. }) => {}
        Ok(d) => assert!(d.check(CM02A, c.addrs[&CM02A]).is_err()),
        Err(other) => panic!("{other:?}"),
    }
    c.assert_serving("after the certificate checks");
}
