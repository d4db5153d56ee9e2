#![deny(missing_docs)]
//! survivable-core (docs come later)
pub mod error;
pub mod events;
pub mod node;
pub mod policy;
pub mod sim;
pub mod state_machine;
pub mod storage;
pub mod topology;
pub mod wire;

pub use error::{Fatal, HandBackError, MembershipError, ProposeError, StepError};
pub use events::{Event, LeadershipCause};
pub use node::{Node, NodeConfig};
pub use state_machine::{RestoreError, StateMachine};
