//! How a certificate names an operator: one URI subject alternative name,
//! `survivable://<cluster_id>/operator/<name>`.
//!
//! The shape follows the members' `survivable://<cluster_id>/node/<id>`
//! (see [`PeerIdentity`](crate::transport::PeerIdentity)) for the same
//! reasons: a URI is compared exactly, no public web CA issues the
//! `survivable:` scheme, and the cluster id keeps a staging operator out of
//! production when one CA serves both. The two shapes never overlap: a
//! member's certificate does not open the operator endpoint, and an
//! operator's certificate is refused by the members' transport (it names no
//! node). An operator certificate needs the extended key usage clientAuth
//! only; `name` says who holds it (a person or a tool, e.g. `alice` or
//! `haproxy`), for the endpoint's logs and the CA's records.

use std::fmt;

use crate::transport::identity::san_uris;

const SCHEME: &str = "survivable://";

/// The longest operator name accepted.
pub const MAX_OPERATOR_NAME: usize = 64;

/// An operator's identity as its certificate states it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorIdentity {
    /// The cluster it may operate.
    pub cluster_id: u64,
    /// Who holds the certificate: 1 to [`MAX_OPERATOR_NAME`] characters of
    /// ASCII letters, digits, `-`, `_` and `.`.
    pub name: String,
}

impl OperatorIdentity {
    /// Operator `name` of cluster `cluster_id`; `None` when `name` is not
    /// a valid operator name (see [`OperatorIdentity::name`]).
    ///
    /// ```
    /// use survivable_core::operator::OperatorIdentity;
    /// let alice = OperatorIdentity::new(2026, "alice").unwrap();
    /// assert_eq!(alice.uri(), "survivable://2026/operator/alice");
    /// assert!(OperatorIdentity::new(2026, "a/b").is_none());
    /// ```
    pub fn new(cluster_id: u64, name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() <= MAX_OPERATOR_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        ok.then(|| Self {
            cluster_id,
            name: name.to_string(),
        })
    }

    /// The URI to put in the operator's certificate as a subject
    /// alternative name: `survivable://<cluster_id>/operator/<name>`.
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/operator/{}", self.cluster_id, self.name)
    }

    /// Parses a URI of the canonical form [`OperatorIdentity::uri`]
    /// writes; anything else (a member's URI, signs, leading zeros, a bad
    /// name, extra parts) is `None`.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix(SCHEME)?;
        let (cluster, name) = rest.split_once("/operator/")?;
        let id = Self::new(cluster.parse().ok()?, name)?;
        (id.uri() == uri).then_some(id)
    }

    /// The operator a DER-encoded certificate names: it must carry exactly
    /// one `survivable:` URI, of the operator form. Never panics, whatever
    /// the bytes; call it only on a certificate whose chain was verified.
    pub fn of_der(cert: &[u8]) -> Option<Self> {
        let uris = san_uris(cert)?;
        let mut ours = uris.into_iter().filter(|u| u.starts_with("survivable:"));
        let one = ours.next()?;
        if ours.next().is_some() {
            return None; // ambiguous
        }
        Self::from_uri(one)
    }
}

impl fmt::Display for OperatorIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_only_the_canonical_form_parses() {
        let ops = OperatorIdentity::new(7, "ops-1.a_b").unwrap();
        assert_eq!(OperatorIdentity::from_uri(&ops.uri()), Some(ops));
        for bad in [
            "survivable://7/node/1",
            "survivable://07/operator/alice",
            "survivable://+7/operator/alice",
            "survivable://7/operator/",
            "survivable://7/operator/a/b",
            "survivable://7/operator/al ice",
            "spiffe://7/operator/alice",
        ] {
            assert_eq!(OperatorIdentity::from_uri(bad), None, "{bad}");
        }
        let long = "a".repeat(MAX_OPERATOR_NAME + 1);
        assert!(OperatorIdentity::new(1, &long).is_none());
        assert!(OperatorIdentity::new(1, &long[1..]).is_some());
    }

    #[test]
    fn garbage_is_nobody() {
        assert_eq!(OperatorIdentity::of_der(&[]), None);
        assert_eq!(OperatorIdentity::of_der(&[0x30, 0x82, 0xff]), None);
    }
}
