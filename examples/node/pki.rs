//! A small PKI for a cluster, made with rcgen: a CA, and for each member a
//! key and a certificate whose subject alternative name is the URI
//! `survivable://<cluster_id>/node/<node_id>`, with the extended key
//! usages serverAuth and clientAuth (a member is both). Used by `node
//! certs`, by the `cluster` launcher, and by the TLS tests (which also
//! issue hostile certificates with it).
// Shared with tests/support through #[path]; not every user needs every item.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use survivable_core::topology::NodeId;
use survivable_core::transport::{PeerIdentity, TlsFiles};

const DAY: Duration = Duration::from_secs(86_400);

/// A certificate and its private key, PEM-encoded.
pub(crate) struct Issued {
    /// The certificate.
    pub(crate) cert: String,
    /// Its private key (PKCS#8).
    pub(crate) key: String,
}

/// A certificate authority.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    key_pem: String,
}

/// Sets the validity period (rcgen's time type is not named here).
fn valid(p: &mut CertificateParams, from: SystemTime, to: SystemTime) {
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(from);
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(to);
}

fn err(e: rcgen::Error) -> String {
    format!("generating certificates: {e}")
}

impl Ca {
    /// A new CA named `name`, valid from yesterday for `days`.
    pub(crate) fn new(name: &str, days: u64) -> Result<Self, String> {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        valid(&mut p, now - DAY, now + DAY * days as u32);
        let pem = p.self_signed(&key).map_err(err)?.pem();
        Ok(Self {
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(p, key),
            pem,
        })
    }

    /// An existing CA: its certificate and its private key, both PEM.
    /// Refuses a key that is not the certificate's (what it would sign
    /// would be refused by every member).
    pub(crate) fn load(pem: &str, key_pem: &str) -> Result<Self, String> {
        use rcgen::PublicKeyData;
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| format!("the CA key is not a PEM private key rcgen can use: {e}"))?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("the CA certificate is not a PEM certificate: {e}"))?;
        // A certificate holds its subject's public key verbatim (its
        // SubjectPublicKeyInfo): the key matches iff its SPKI is in there.
        let spki = key.subject_public_key_info();
        if !der.windows(spki.len()).any(|w| w == spki.as_slice()) {
            return Err(
                "the CA key does not belong to the CA certificate (ca.pem): pass the key written \
                 with this ca.pem (--ca-key)"
                    .into(),
            );
        }
        let issuer = Issuer::from_ca_cert_pem(pem, key)
            .map_err(|e| format!("the CA certificate cannot be used to issue: {e}"))?;
        Ok(Self {
            issuer,
            pem: pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA's private key, PEM (PKCS#8). Keep it apart from members'
    /// files: whoever has it can make members.
    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate, PEM.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// A leaf certificate with these URI subject alternative names, valid
    /// from `not_before` to `not_after`.
    pub(crate) fn issue(
        &self,
        uris: &[String],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, String> {
        let both = [
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue_for(uris, not_before, not_after, &both)
    }

    /// [`Ca::issue`] with these extended key usages only (a member needs
    /// both serverAuth and clientAuth; the tests issue less).
    pub(crate) fn issue_for(
        &self,
        uris: &[String],
        not_before: SystemTime,
        not_after: SystemTime,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> Result<Issued, String> {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.distinguished_name.push(
            DnType::CommonName,
            uris.first().map_or("no identity", |u| u.as_str()),
        );
        for u in uris {
            let uri = u.as_str().try_into().map_err(err)?;
            p.subject_alt_names.push(SanType::URI(uri));
        }
        p.extended_key_usages = usages.to_vec();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = true;
        valid(&mut p, not_before, not_after);
        let cert = p.signed_by(&key, &self.issuer).map_err(err)?.pem();
        Ok(Issued {
            cert,
            key: key.serialize_pem(),
        })
    }

    /// A member's certificate, valid from yesterday for `days`.
    pub(crate) fn member(&self, id: PeerIdentity, days: u64) -> Result<Issued, String> {
        let now = SystemTime::now();
        self.issue(&[id.uri()], now - DAY, now + DAY * days as u32)
    }

    #[cfg(feature = "operator")]
    /// An operator's certificate (`survivable://<cluster_id>/operator/<name>`,
    /// clientAuth only: it opens members' operator endpoints, never their
    /// transport), valid from yesterday for `days`.
    pub(crate) fn operator(
        &self,
        id: &survivable_core::operator::OperatorIdentity,
        days: u64,
    ) -> Result<Issued, String> {
        let now = SystemTime::now();
        let client = [ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_for(&[id.uri()], now - DAY, now + DAY * days as u32, &client)
    }

    /// Writes this CA and `issued` as `node`'s files in `dir` (the
    /// [`TlsFiles::in_dir`] layout); the key file is readable by its owner
    /// only.
    pub(crate) fn write_member(
        &self,
        dir: &Path,
        node: NodeId,
        issued: &Issued,
    ) -> Result<TlsFiles, String> {
        let files = TlsFiles::in_dir(dir, node);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write(&files.ca, &self.pem, false)?;
        write(&files.cert, &issued.cert, false)?;
        write(&files.key, &issued.key, true)?;
        Ok(files)
    }
}

#[cfg(feature = "operator")]
impl Ca {
    /// Writes `issued` as operator `id`'s files in `dir`:
    /// `operator-<name>.pem` and `operator-<name>.key` (owner only).
    pub(crate) fn write_operator(
        &self,
        dir: &Path,
        id: &survivable_core::operator::OperatorIdentity,
        issued: &Issued,
    ) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write(
            &dir.join(format!("operator-{}.pem", id.name)),
            &issued.cert,
            false,
        )?;
        write(
            &dir.join(format!("operator-{}.key", id.name)),
            &issued.key,
            true,
        )
    }
}

pub(crate) fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = secret;
    o.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a new CA and one key and certificate per node of `cluster_id`
/// into `dir`; returns the CA (to issue more).
pub(crate) fn write_cluster(
    dir: &Path,
    cluster_id: u64,
    nodes: &[NodeId],
    days: u64,
) -> Result<Ca, String> {
    let ca = Ca::new(&format!("survivable-core cluster {cluster_id} CA"), days)?;
    for &node in nodes {
        let issued = ca.member(PeerIdentity::new(cluster_id, node), days)?;
        ca.write_member(dir, node, &issued)?;
    }
    Ok(ca)
}
