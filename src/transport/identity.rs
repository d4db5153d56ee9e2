//! How a certificate names a member: one URI subject alternative name,
//! `survivable://<cluster_id>/node/<node_id>`.
//!
//! Why a URI, and why both ids:
//!
//! - A member is not a host name. Members move between hosts and addresses
//!   (a replacement joins on another host, NAT rewrites addresses), so a
//!   DNS or IP SAN would tie identity to addressing, and DNS names match
//!   with wildcards: a `*.example` certificate would speak for every node.
//!   A URI SAN is compared exactly, character for character.
//! - No public web CA issues `survivable://` names, so a web server's
//!   certificate can never pass for a member even under a mis-configured
//!   trust store. The shape is the one SPIFFE uses (`spiffe://domain/path`),
//!   so ordinary PKI tools issue it (`subjectAltName = URI:...`).
//! - The cluster id is in the name because one CA often serves several
//!   clusters (staging and production): without it, a staging member's
//!   certificate would be accepted by production.
//!
//! The form is canonical: decimal ids without sign or leading zeros, and
//! nothing else. A certificate must carry exactly one `survivable:` URI;
//! none, several or a malformed one is refused ([`CertifiedAs`]).
//!
//! The subject alternative names are read here with a small DER walker,
//! but only from certificates whose chain and signatures rustls/webpki
//! have already verified against the cluster CA.

use std::fmt;

use crate::topology::NodeId;

const SCHEME: &str = "survivable://";

/// A member's identity as its certificate states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerIdentity {
    /// The cluster it belongs to.
    pub cluster_id: u64,
    /// The node it is.
    pub node: NodeId,
}

impl PeerIdentity {
    /// Node `node` of cluster `cluster_id`.
    pub fn new(cluster_id: u64, node: NodeId) -> Self {
        Self { cluster_id, node }
    }

    /// The URI to put in the member's certificate as a subject alternative
    /// name: `survivable://<cluster_id>/node/<node_id>`.
    ///
    /// ```
    /// use survivable_core::topology::NodeId;
    /// use survivable_core::transport::PeerIdentity;
    /// assert_eq!(PeerIdentity::new(2026, NodeId(3)).uri(), "survivable://2026/node/3");
    /// ```
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/node/{}", self.cluster_id, self.node.0)
    }

    /// Parses a URI of the canonical form [`PeerIdentity::uri`] writes;
    /// anything else (other scheme, signs, leading zeros, extra parts) is
    /// `None`.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix(SCHEME)?;
        let (cluster, node) = rest.split_once("/node/")?;
        let id = Self::new(cluster.parse().ok()?, NodeId(node.parse().ok()?));
        (id.uri() == uri).then_some(id)
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

/// What a certificate says about who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertifiedAs {
    /// It has no `survivable:` URI subject alternative name.
    Nobody,
    /// It has `uris` URIs of the `survivable:` scheme but not exactly one
    /// well-formed one: ambiguous or malformed, refused.
    Unclear {
        /// How many `survivable:` URIs it carries.
        uris: usize,
    },
    /// It names exactly this member.
    Peer(PeerIdentity),
}

impl CertifiedAs {
    /// Reads the identity out of a DER-encoded X.509 certificate. Never
    /// panics, whatever the bytes.
    pub fn of_der(cert: &[u8]) -> Self {
        let uris: Vec<&str> = san_uris(cert)
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.starts_with("survivable:"))
            .collect();
        match uris.as_slice() {
            [] => Self::Nobody,
            [one] => PeerIdentity::from_uri(one).map_or(Self::Unclear { uris: 1 }, Self::Peer),
            more => Self::Unclear { uris: more.len() },
        }
    }

    /// The identity, when there is exactly one.
    pub fn peer(&self) -> Option<PeerIdentity> {
        match self {
            Self::Peer(p) => Some(*p),
            _ => None,
        }
    }
}

impl fmt::Display for CertifiedAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nobody => f.write_str("no survivable:// identity"),
            Self::Unclear { uris } => write!(f, "{uris} unclear survivable: URIs"),
            Self::Peer(p) => write!(f, "{p}"),
        }
    }
}

/// Whom a certificate was expected to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpectedPeer {
    /// Any member of this cluster's topology other than this one (an
    /// inbound connection, before its hello).
    MemberOf {
        /// This cluster.
        cluster_id: u64,
    },
    /// This member exactly: the node dialled, or the sender a hello names.
    Node(PeerIdentity),
}

impl fmt::Display for ExpectedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MemberOf { cluster_id } => write!(f, "a member of cluster {cluster_id}"),
            Self::Node(p) => write!(f, "{p}"),
        }
    }
}

/// One DER tag-length-value: (tag, value, rest). Definite lengths of up to
/// four bytes only; `None` on anything malformed.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers appear nowhere we look
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    let value = rest.get(..len)?;
    Some((tag, value, &rest[len..]))
}

/// The children of a constructed value.
fn children(mut value: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, v, rest) = tlv(value)?;
        value = rest;
        Some((tag, v))
    })
}

const SEQUENCE: u8 = 0x30;
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT in TBSCertificate
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const URI: u8 = 0x86; // GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

/// Every URI subject alternative name of a DER certificate (RFC 5280
/// §4.2.1.6), or `None` when the structure is not a certificate.
pub(crate) fn san_uris(cert: &[u8]) -> Option<Vec<&str>> {
    let (SEQUENCE, cert, _) = tlv(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut uris = Vec::new();
    for (tag, ext) in children(tbs) {
        if tag != EXTENSIONS {
            continue;
        }
        let (SEQUENCE, list, _) = tlv(ext)? else {
            return None;
        };
        for (tag, one) in children(list) {
            if tag != SEQUENCE {
                return None;
            }
            let mut parts = children(one);
            let (OID, oid) = parts.next()? else {
                return None;
            };
            if oid != SUBJECT_ALT_NAME {
                continue;
            }
            let value = match parts.next()? {
                (BOOLEAN, _) => parts.next()?,
                other => other,
            };
            let (OCTET_STRING, names) = value else {
                return None;
            };
            let (SEQUENCE, names, _) = tlv(names)? else {
                return None;
            };
            for (tag, name) in children(names) {
                if tag == URI {
                    uris.push(std::str::from_utf8(name).ok()?);
                }
            }
        }
    }
    Some(uris)
}

const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT in TBSCertificate

/// When a DER certificate stops being valid (its `notAfter`), in seconds
/// since the Unix epoch, or `None` when the structure is not a
/// certificate. Read only from certificates webpki has already verified,
/// to close a connection when its peer's certificate expires.
pub(crate) fn not_after(cert: &[u8]) -> Option<u64> {
    let (SEQUENCE, cert, _) = tlv(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut parts = children(tbs).peekable();
    if parts.peek()?.0 == VERSION {
        parts.next();
    }
    let (INTEGER, _) = parts.next()? else {
        return None;
    };
    let (SEQUENCE, _) = parts.next()? else {
        return None; // signature algorithm
    };
    let (SEQUENCE, _) = parts.next()? else {
        return None; // issuer
    };
    let (SEQUENCE, validity) = parts.next()? else {
        return None;
    };
    let mut times = children(validity);
    let _not_before = times.next()?;
    let (tag, text) = times.next()?;
    x509_time(tag, std::str::from_utf8(text).ok()?)
}

/// An X.509 `Time` (RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ`, years
/// 1950-2049, or GeneralizedTime `YYYYMMDDHHMMSSZ`) as seconds since the
/// Unix epoch; `None` for anything else or before 1970.
fn x509_time(tag: u8, text: &str) -> Option<u64> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    // Days from the civil date (the proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn uris_round_trip_and_only_the_canonical_form_parses() {
        let id = PeerIdentity::new(2026, NodeId(3));
        assert_eq!(PeerIdentity::from_uri(&id.uri()), Some(id));
        for bad in [
            "survivable://2026/node/03",
            "survivable://+2026/node/3",
            "survivable://2026/node/3/",
            "survivable://2026/nodes/3",
            "survivable://2026/node/3?x",
            "SURVIVABLE://2026/node/3",
            "spiffe://2026/node/3",
            "survivable://2026/node/18446744073709551616",
            "survivable:///node/3",
        ] {
            assert_eq!(PeerIdentity::from_uri(bad), None, "{bad}");
        }
    }

    fn cert(sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> rcgen::SanType {
        rcgen::SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn the_identity_is_read_from_a_real_certificate() {
        let dns = rcgen::SanType::DnsName("cm01a.example".try_into().unwrap());
        let one = cert(vec![
            dns.clone(),
            uri("https://example.org"),
            uri("survivable://7/node/2"),
        ]);
        assert_eq!(
            CertifiedAs::of_der(&one),
            CertifiedAs::Peer(PeerIdentity::new(7, NodeId(2)))
        );
        assert_eq!(CertifiedAs::of_der(&cert(vec![dns])), CertifiedAs::Nobody);
        assert_eq!(CertifiedAs::of_der(&cert(vec![])), CertifiedAs::Nobody);
        let two = cert(vec![
            uri("survivable://7/node/2"),
            uri("survivable://7/node/3"),
        ]);
        assert_eq!(CertifiedAs::of_der(&two), CertifiedAs::Unclear { uris: 2 });
        let bad = cert(vec![uri("survivable://7/node/x")]);
        assert_eq!(CertifiedAs::of_der(&bad), CertifiedAs::Unclear { uris: 1 });
    }

    #[test]
    fn a_truncated_certificate_names_nobody() {
        let der = cert(vec![uri("survivable://7/node/2")]);
        for cut in 0..der.len() {
            assert_eq!(CertifiedAs::of_der(&der[..cut]), CertifiedAs::Nobody);
        }
    }

    #[test]
    fn the_expiry_is_read_from_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        for (y, m, d, expect) in [
            (2030, 1, 1, 1_893_456_000u64),
            (2049, 12, 31, 2_524_521_600),
            (2050, 1, 1, 2_524_608_000), // GeneralizedTime from 2050 on
            (1999, 3, 1, 920_246_400),
        ] {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.not_after = rcgen::date_time_ymd(y, m, d);
            let der = p.self_signed(&key).unwrap().der().to_vec();
            assert_eq!(not_after(&der), Some(expect), "{y}-{m}-{d}");
            for cut in 0..der.len() / 2 {
                let _ = not_after(&der[..cut]);
            }
        }
        assert_eq!(x509_time(UTC_TIME, "240229235960Z"), Some(1_709_251_200));
        for bad in [
            "2402292359Z",
            "241329000000Z",
            "24022900000aZ",
            "240229000000",
        ] {
            assert_eq!(x509_time(UTC_TIME, bad), None, "{bad}");
        }
        assert_eq!(x509_time(GENERALIZED_TIME, "19691231235959Z"), None);
    }

    quickcheck! {
        fn garbage_never_panics(bytes: Vec<u8>) -> bool {
            let _ = CertifiedAs::of_der(&bytes);
            let _ = not_after(&bytes);
            true
        }
    }
}
