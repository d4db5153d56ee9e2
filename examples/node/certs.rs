//! `node certs`: a lab cluster's PKI.
//!
//! - `node certs <dir>` writes a new cluster CA (`<dir>/ca.pem`) and a key
//!   and certificate per member (`node-<id>.key`, `node-<id>.pem`). The
//!   CA's private key goes apart from members' files, by default to
//!   `<dir>-ca/ca.key` (directory 0700, file 0600), or `--ca-key PATH`; a
//!   path inside `<dir>` is refused, since `<dir>` is what gets copied to
//!   members' hosts, and whoever holds the CA key can make members.
//! - `node certs add <dir> --id N` issues one more member's key and
//!   certificate from that CA (a replacement, a spare, a new witness), and
//!   `node certs add <dir> --operator NAME` an operator's client
//!   certificate. The cluster id comes from `--cluster-id` or from a member
//!   certificate already in `<dir>`. Existing files are kept unless
//!   `--force` (re-issuing a member's certificate, e.g. before it expires).

use std::path::{Path, PathBuf};

use survivable_core::operator::OperatorIdentity;
use survivable_core::topology::NodeId;
use survivable_core::transport::{CertifiedAs, PeerIdentity, TlsFiles};

use crate::pki::{self, Ca};

const USAGE: &str = "usage: node certs <dir> [--cluster-id N] [--nodes 1,2,...] [--days D] [--operator NAME] [--ca-key PATH]\n       node certs add <dir> (--id N | --operator NAME) [--ca-key PATH] [--cluster-id N] [--days D] [--force]";

/// The parsed flags of either form.
struct Args<'a> {
    dir: &'a Path,
    args: &'a [String],
}

impl<'a> Args<'a> {
    fn parse(args: &'a [String]) -> Result<Self, String> {
        let dir = args
            .first()
            .filter(|d| !d.starts_with("--"))
            .ok_or_else(|| USAGE.to_string())?;
        for a in args.iter().skip(1).filter(|a| a.starts_with("--")) {
            let known = [
                "--cluster-id",
                "--nodes",
                "--days",
                "--operator",
                "--ca-key",
                "--id",
                "--force",
            ];
            if !known.contains(&a.as_str()) {
                return Err(format!("unknown option {a}\n{USAGE}"));
            }
        }
        Ok(Self {
            dir: Path::new(dir),
            args,
        })
    }

    fn flag(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.args.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) => match self.args.get(i + 1) {
                Some(v) if !v.starts_with("--") => Ok(Some(v.as_str())),
                _ => Err(format!("{name} needs a value\n{USAGE}")),
            },
        }
    }

    fn number(&self, name: &str) -> Result<Option<u64>, String> {
        self.flag(name)?
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name} {v:?}: expected a whole number"))
            })
            .transpose()
    }

    fn days(&self) -> Result<u64, String> {
        match self.number("--days")? {
            Some(0) => Err("--days 0: a certificate must be valid for at least a day".into()),
            Some(d) => Ok(d),
            None => Ok(365),
        }
    }

    /// Where the CA key is: `--ca-key`, or `<dir>-ca/ca.key`; never inside
    /// `<dir>`.
    fn ca_key(&self) -> Result<PathBuf, String> {
        let path = match self.flag("--ca-key")? {
            Some(p) => PathBuf::from(p),
            None => default_ca_key(self.dir),
        };
        let inside = |p: &Path| {
            let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            abs(p).starts_with(abs(self.dir))
        };
        if inside(&path) {
            return Err(format!(
                "--ca-key {}: the CA key must not be inside {} (that directory is copied to members' hosts); put it elsewhere, e.g. {}",
                path.display(),
                self.dir.display(),
                default_ca_key(self.dir).display()
            ));
        }
        Ok(path)
    }
}

/// `<dir>-ca/ca.key`: next to the members' directory, not in it.
pub(crate) fn default_ca_key(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "pki".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}-ca")).join("ca.key")
}

/// `node certs ...`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("add") => add(&Args::parse(&args[1..])?),
        _ => new_cluster(&Args::parse(args)?),
    }
}

/// Writes the CA key to `path` (its directory made 0700, the file 0600).
/// Refuses to replace an existing CA key: the cluster's members trust it.
pub(crate) fn write_ca_key(ca: &Ca, path: &Path) -> Result<(), String> {
    if path.exists() {
        return Err(format!(
            "{} exists: a CA key is never overwritten (the cluster trusts it). Issue from it with `node certs add`, or pass another --ca-key",
            path.display()
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", parent.display()))?;
        }
    }
    pki::write(path, ca.key_pem(), true)
}

fn new_cluster(a: &Args<'_>) -> Result<(), String> {
    let cluster_id = a.number("--cluster-id")?.unwrap_or(2026);
    let days = a.days()?;
    let nodes = match a.flag("--nodes")? {
        None => (1..=5).map(NodeId).collect(),
        Some(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<u64>()
                    .map(NodeId)
                    .map_err(|_| format!("--nodes {list:?}: expected ids like 1,2,3"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let key_path = a.ca_key()?;
    if key_path.exists() {
        return Err(format!(
            "{} exists: this would make a new CA and orphan the one the cluster trusts. To issue one member's certificate from it: node certs add {} --id N",
            key_path.display(),
            a.dir.display()
        ));
    }
    let ca = pki::write_cluster(a.dir, cluster_id, &nodes, days)?;
    write_ca_key(&ca, &key_path)?;
    println!(
        "wrote {}/ca.pem and node-<id>.pem / node-<id>.key for nodes {:?} of cluster {cluster_id}, valid {days} days",
        a.dir.display(),
        nodes.iter().map(|n| n.0).collect::<Vec<_>>()
    );
    println!(
        "wrote the CA key to {} (keep it off members' hosts; `node certs add {} --id N` issues from it)",
        key_path.display(),
        a.dir.display()
    );
    println!(
        "in node <id>'s member file: [tls] ca = \"{0}/ca.pem\", cert = \"{0}/node-<id>.pem\", key = \"{0}/node-<id>.key\"",
        a.dir.display()
    );
    if let Some(name) = a.flag("--operator")? {
        issue_operator(&ca, a.dir, cluster_id, name, days, false)?;
    }
    Ok(())
}

/// Loads the CA of `<dir>`: `<dir>/ca.pem` and the key.
fn load_ca(a: &Args<'_>) -> Result<Ca, String> {
    let ca_pem = a.dir.join("ca.pem");
    let key_path = a.ca_key()?;
    let read = |p: &Path, what: &str| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}: {what}", p.display()))
    };
    let pem = read(
        &ca_pem,
        "run `node certs <dir>` first, or point at the cluster's directory",
    )?;
    let key = read(
        &key_path,
        "the CA key is written apart from members' files (default <dir>-ca/ca.key); pass --ca-key PATH",
    )?;
    Ca::load(&pem, &key)
        .map_err(|e| format!("{} with {}: {e}", ca_pem.display(), key_path.display()))
}

/// The cluster id: `--cluster-id`, or the one a member certificate in
/// `<dir>` names (refusing a directory whose certificates disagree).
fn cluster_id(a: &Args<'_>) -> Result<u64, String> {
    if let Some(id) = a.number("--cluster-id")? {
        return Ok(id);
    }
    let mut seen = std::collections::BTreeSet::new();
    let entries = std::fs::read_dir(a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("node-") && name.ends_with(".pem")) {
            continue;
        }
        if let Some(id) = member_identity(&e.path()) {
            seen.insert(id.cluster_id);
        }
    }
    match seen.len() {
        1 => Ok(*seen.first().expect("one")),
        0 => Err(format!(
            "no member certificate in {} names the cluster: pass --cluster-id N",
            a.dir.display()
        )),
        _ => Err(format!(
            "the member certificates in {} name several clusters {seen:?}: pass --cluster-id N",
            a.dir.display()
        )),
    }
}

/// The member a PEM certificate file names, if it names one.
pub(crate) fn member_identity(path: &Path) -> Option<PeerIdentity> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let der = CertificateDer::from_pem_file(path).ok()?;
    CertifiedAs::of_der(&der).peer()
}

fn add(a: &Args<'_>) -> Result<(), String> {
    let force = a.args.iter().any(|x| x == "--force");
    let days = a.days()?;
    let id = a.number("--id")?;
    let operator = a.flag("--operator")?;
    if id.is_some() == operator.is_some() {
        return Err(format!(
            "certs add: give exactly one of --id N or --operator NAME\n{USAGE}"
        ));
    }
    let ca = load_ca(a)?;
    let cluster_id = cluster_id(a)?;
    if let Some(name) = operator {
        return issue_operator(&ca, a.dir, cluster_id, name, days, force);
    }
    let node = NodeId(id.expect("checked above"));
    if node.0 == 0 {
        return Err("--id 0: member ids start at 1".into());
    }
    let files = TlsFiles::in_dir(a.dir, node);
    if !force && (files.cert.exists() || files.key.exists()) {
        return Err(format!(
            "{} exists: node {} already has a certificate. Pick an unused id (a replacement takes a new one), or pass --force to re-issue it",
            files.cert.display(),
            node.0
        ));
    }
    let issued = ca.member(PeerIdentity::new(cluster_id, node), days)?;
    ca.write_member(a.dir, node, &issued)?;
    println!(
        "wrote {} / {} naming {} (cluster {cluster_id}), valid {days} days",
        files.cert.display(),
        files.key.display(),
        PeerIdentity::new(cluster_id, node).uri()
    );
    Ok(())
}

fn issue_operator(
    ca: &Ca,
    dir: &Path,
    cluster_id: u64,
    name: &str,
    days: u64,
    force: bool,
) -> Result<(), String> {
    let id = OperatorIdentity::new(cluster_id, name)
        .ok_or_else(|| format!("--operator {name:?}: 1-64 ASCII letters, digits, - _ ."))?;
    let cert = dir.join(format!("operator-{name}.pem"));
    if !force && cert.exists() {
        return Err(format!(
            "{} exists: pass --force to re-issue it",
            cert.display()
        ));
    }
    ca.write_operator(dir, &id, &ca.operator(&id, days)?)?;
    println!(
        "wrote {}/operator-{name}.pem / .key naming {id}",
        dir.display()
    );
    Ok(())
}
