//! The runtime's [`Handle`] as the endpoint's member, and starting the
//! endpoint a member's configuration asks for.

use std::sync::Arc;

use super::{serve, Operable, OperatorConfig, OperatorError, OperatorServer, OperatorTls};
use crate::node::Status;
use crate::runtime::{Handle, MemberConfig};
use crate::topology::NodeId;
use crate::transport::TransportSecurity;

impl Operable for Handle {
    fn status(&self) -> Status {
        Self::status(self)
    }

    fn status_json(&self) -> String {
        Self::status(self).to_json()
    }

    fn metrics_text(&self) -> String {
        self.metrics()
    }

    fn hand_back(&self) -> Result<(), String> {
        Self::hand_back(self).map_err(|e| e.to_string())
    }

    fn transfer(&self, to: NodeId) -> Result<(), String> {
        self.transfer_leader(to).map_err(|e| e.to_string())
    }

    fn activate(&self) -> Result<(), String> {
        Self::activate(self).map_err(|e| e.to_string())
    }

    fn drain(&self) -> Result<(), String> {
        Self::drain(self).map_err(|e| e.to_string())
    }

    fn undrain(&self) -> Result<(), String> {
        Self::undrain(self).map_err(|e| e.to_string())
    }

    fn is_running(&self) -> bool {
        Self::is_running(self)
    }
}

/// Starts the endpoint `cfg.operator` describes for the member `handle`
/// runs (`Ok(None)` when it describes none). With `tls`, the member's own
/// transport files serve: its certificate is the server's, and clients
/// must present an operator certificate of the same CA.
///
/// The endpoint holds a clone of `handle`: shut it down before the member
/// (the node thread stops when the last clone goes).
///
/// # Errors
/// [`OperatorError`]: the address is taken, plain HTTP off loopback, TLS
/// asked for on a member without TLS files, or TLS files refused.
pub fn serve_member(
    cfg: &MemberConfig,
    handle: &Handle,
) -> Result<Option<OperatorServer>, OperatorError> {
    let Some(o) = &cfg.operator else {
        return Ok(None);
    };
    let mut oc = OperatorConfig::new(o.listen);
    if o.tls {
        let TransportSecurity::MutualTls(files) = &cfg.security else {
            return Err(OperatorError::Config(
                "operator.tls = true needs the member's [tls] files; this member runs plaintext"
                    .into(),
            ));
        };
        oc.tls = Some(OperatorTls {
            files: files.clone(),
            cluster_id: cfg.topology.cluster_id(),
        });
    }
    oc.startup_grace = o.startup_grace;
    oc.threads = o.threads;
    serve(oc, Arc::new(handle.clone())).map(Some)
}
