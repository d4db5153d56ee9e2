//! What can be wrong with a member file: [`ConfigError`], a list of
//! [`Problem`]s each naming its key.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::policy::PolicyError;
use crate::topology::TopologyError;

/// A member file could not be used. Nothing was started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read member file {}: {source}; check the path and that this user may read it", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read, and is wrong: every problem found, in the order
    /// of the file's sections.
    #[error("{}", Listed(file.as_ref(), problems))]
    Invalid {
        /// The file, when it was read by
        /// [`MemberConfig::load`](crate::runtime::MemberConfig::load).
        file: Option<PathBuf>,
        /// What is wrong, at least one.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (none for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems, .. } => problems,
        }
    }
}

/// Formats the problems of a file, one per line when there are several.
struct Listed<'a>(Option<&'a PathBuf>, &'a [Problem]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "member file {}", path.display())?,
            None => write!(f, "member file")?,
        }
        match self.1 {
            [one] => write!(f, ": {one}"),
            all => {
                write!(f, ": {} problems, fix each:", all.len())?;
                for p in all {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// One thing wrong in a member file, at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a dotted path with array indexes counted from 0, such as
    /// `cores[1].members[0].addr`; empty for a syntax error (its line
    /// and column are in the [`ProblemKind::Syntax`]).
    pub key: String,
    /// What is wrong there, and what to do.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.key, self.kind)
        }
    }
}

/// What is wrong at a [`Problem`]'s key. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The text is not TOML.
    #[error("TOML syntax error at line {line}, column {column}: {message}; fix the syntax (see https://toml.io)")]
    Syntax {
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// A key this table does not have (a misspelling is the usual cause).
    #[error("unknown key: remove it or correct its spelling (keys here: {})", known.join(", "))]
    UnknownKey {
        /// The keys the table may have.
        known: &'static [&'static str],
    },
    /// A required key is absent.
    #[error("missing: add it ({hint})")]
    Missing {
        /// What it holds.
        hint: &'static str,
    },
    /// The value has the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// The type wanted.
        expected: &'static str,
        /// The type given.
        found: &'static str,
    },
    /// A number outside what the key allows.
    #[error("{value} is out of range: {allowed}")]
    OutOfRange {
        /// The value given.
        value: i64,
        /// The values allowed.
        allowed: &'static str,
    },
    /// An empty string where a name or a path is needed.
    #[error("empty: give a non-empty value")]
    Empty,
    /// Not one of the words the key takes.
    #[error("{value:?} is not one of: {}", choices.join(", "))]
    UnknownChoice {
        /// The value given.
        value: String,
        /// The words allowed.
        choices: &'static [&'static str],
    },
    /// Not an IP address with a port.
    #[error("{value:?} is not an IP address and port ({reason}): write e.g. \"10.0.0.1:7001\" or \"[fd00::1]:7001\" (host names are not resolved)")]
    BadAddress {
        /// The value given.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// Not a time of day.
    #[error("{value:?} is not a time of day: write \"HH:MM\" (UTC, 24-hour), e.g. \"22:30\"")]
    BadTime {
        /// The value given.
        value: String,
    },
    /// A key that means nothing with the other settings given.
    #[error("not used {unless}: remove it")]
    Unused {
        /// When it would be used.
        unless: &'static str,
    },
    /// Two members (or witnesses) with one id.
    #[error("id {id} is already used by {first}: give every member and witness its own id, never reused")]
    DuplicateId {
        /// The id.
        id: u64,
        /// The key of the first use.
        first: String,
    },
    /// Two sites, cores, members or witnesses with one name.
    #[error("name {name:?} is already used by {first}: names must be unique")]
    DuplicateName {
        /// The name.
        name: String,
        /// The key of the first use.
        first: String,
    },
    /// Two members with one address.
    #[error(
        "address {addr} is already used by {first}: every member listens on an address of its own"
    )]
    DuplicateAddress {
        /// The address.
        addr: SocketAddr,
        /// The key of the first use.
        first: String,
    },
    /// A site that no `[[sites]]` entry declares.
    #[error(
        "site {site:?} is not declared: add a [[sites]] entry named {site:?}, or correct the name"
    )]
    UnknownSite {
        /// The name given.
        site: String,
    },
    /// Not exactly one main site.
    #[error("{count} sites have main = true: mark exactly one site (the one with the main duplicated core) main = true")]
    MainSites {
        /// How many are marked main.
        count: usize,
    },
    /// Two survivable cores with one rank.
    #[error("rank {rank} is already given to {first}: give each survivable core its own rank, 1 for the first choice")]
    DuplicateRank {
        /// The rank.
        rank: u32,
        /// The key of the first use.
        first: String,
    },
    /// Ranks must be 1, 2, 3, ... without a gap.
    #[error("rank {rank} but no survivable core has rank {missing}: number the survivable cores 1, 2, ... in order of preference, without gaps")]
    RankGap {
        /// The rank given.
        rank: u32,
        /// The first rank nobody has.
        missing: u32,
    },
    /// `member.id` is no member of the topology.
    #[error("{id} is not a member or witness of the topology: use the id of this process's member, as listed under [[cores]] members or [[witnesses]]")]
    NotInTopology {
        /// The id given.
        id: u64,
    },
    /// Neither mutual TLS nor the plaintext test mode.
    #[error("no [tls] table: members authenticate each other with mutual TLS; add [tls] with ca, cert and key (the README shows how to issue them), or, for a test on one machine only, set member.insecure_plaintext_loopback_only = true")]
    TlsMissing,
    /// Both mutual TLS and the plaintext test mode.
    #[error("true, and a [tls] table is given too: choose one (remove this key to use TLS)")]
    TlsAndPlaintext,
    /// The operator endpoint off loopback without TLS.
    #[error("{addr} is not a loopback address: the operator endpoint takes plain HTTP on loopback only; set operator.tls = true (clients then need an operator certificate of the cluster CA), or listen on 127.0.0.1")]
    OperatorOffLoopback {
        /// The address.
        addr: SocketAddr,
    },
    /// Plaintext with an address off the loopback interface.
    #[error("{addr} is not a loopback address, and member.insecure_plaintext_loopback_only = true: plaintext is refused off loopback; use [tls], or loopback addresses")]
    PlaintextOffLoopback {
        /// The address.
        addr: SocketAddr,
    },
    /// The timers or the hand-back policy are inconsistent.
    #[error("{0}")]
    Policy(PolicyError),
    /// A frame limit the transport cannot use.
    #[error("must be between {min} and {max} bytes")]
    FrameLimit {
        /// The smallest usable.
        min: usize,
        /// The largest a frame header can announce.
        max: usize,
    },
    /// An idle timeout too short for the keepalives.
    #[error("must be at least four keepalives (4 x limits.keepalive_ms, which must be above 0): a connection is taken for dead only after several keepalives went unanswered")]
    IdleBelowKeepalives,
    /// A backoff whose first wait is longer than its longest.
    #[error("is longer than limits.backoff_max_ms: the first wait between reconnection attempts cannot exceed the longest")]
    BackoffOrder,
    /// The topology is refused (a check only the whole topology can make).
    #[error("{0}")]
    Topology(TopologyError),
}
