//! The endpoint's routes: parsing a request line into a [`Route`] (pure),
//! and answering it from an [`Operable`].

use std::fmt::Write as _;
use std::time::Duration;

use super::Operable;
use crate::node::{NodeRole, Status};
use crate::topology::NodeId;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`: the Prometheus text.
    Metrics,
    /// `GET /health`: the member runs and knows a leader (or is starting).
    Health,
    /// `GET /leader`: 200 only at the leader.
    Leader,
    /// `GET /replica`: 200 only at a running member following a leader.
    Replica,
    /// `GET /status`: the status JSON.
    Status,
    /// `POST /hand-back`.
    HandBack,
    /// `POST /transfer/{id}`.
    Transfer(NodeId),
    /// `POST /activate`.
    Activate,
    /// `POST /drain`.
    Drain,
    /// `POST /undrain`.
    Undrain,
}

/// Why a request names no route; answered with a JSON error, and nothing
/// changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such path (404).
    NotFound(String),
    /// The path exists for other methods (405, with `Allow`).
    MethodNotAllowed {
        /// The method given.
        method: String,
        /// The method the path takes.
        allow: &'static str,
    },
    /// `/transfer/{id}` with an id that is neither `3` nor `n3` (400).
    BadId(String),
}

/// Every path and the method it takes, for errors' hints.
pub const ROUTES: &str = "GET /metrics, /health, /leader, /replica, /status; \
     POST /hand-back, /transfer/{id}, /activate, /drain, /undrain";

/// Parses a node id written as `3` or `n3`.
pub fn parse_node_id(text: &str) -> Option<NodeId> {
    let digits = text.strip_prefix('n').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(NodeId)
}

/// Which route `method` and `url` name (a query string is ignored).
pub fn parse(method: &str, url: &str) -> Result<Route, RouteError> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let (route, allow) = match path {
        "/metrics" => (Some(Route::Metrics), "GET"),
        "/health" => (Some(Route::Health), "GET"),
        "/leader" => (Some(Route::Leader), "GET"),
        "/replica" => (Some(Route::Replica), "GET"),
        "/status" => (Some(Route::Status), "GET"),
        "/hand-back" => (Some(Route::HandBack), "POST"),
        "/activate" => (Some(Route::Activate), "POST"),
        "/drain" => (Some(Route::Drain), "POST"),
        "/undrain" => (Some(Route::Undrain), "POST"),
        _ if path.starts_with("/transfer/") => (None, "POST"),
        _ => return Err(RouteError::NotFound(path.to_string())),
    };
    let allowed = method == allow || (allow == "GET" && method == "HEAD");
    if !allowed {
        return Err(RouteError::MethodNotAllowed {
            method: method.to_string(),
            allow,
        });
    }
    match route {
        Some(r) => Ok(r),
        None => {
            let id = &path["/transfer/".len()..];
            parse_node_id(id)
                .map(Route::Transfer)
                .ok_or_else(|| RouteError::BadId(id.to_string()))
        }
    }
}

/// An answer: status code, content type, body, and the `Allow` header of
/// a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub code: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// The `Allow` header (405 only).
    pub allow: Option<&'static str>,
}

/// The Prometheus text exposition format's content type.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4";
const JSON: &str = "application/json";

impl Reply {
    fn json(code: u16, body: String) -> Self {
        Self {
            code,
            content_type: JSON,
            body,
            allow: None,
        }
    }

    /// `{"error": ..., "hint": ...}` with `code`.
    pub fn error(code: u16, error: &str, hint: &str) -> Self {
        Self::json(
            code,
            format!(
                "{{\"error\":{},\"hint\":{}}}",
                json_string(error),
                json_string(hint)
            ),
        )
    }

    /// The answer to a request that names no route.
    pub fn refused(e: &RouteError) -> Self {
        match e {
            RouteError::NotFound(path) => Self::error(
                404,
                &format!("no route {path}"),
                &format!("the routes are {ROUTES}"),
            ),
            RouteError::MethodNotAllowed { method, allow } => Self {
                allow: Some(allow),
                ..Self::error(
                    405,
                    &format!("{method} is not allowed here"),
                    &format!("use {allow}"),
                )
            },
            RouteError::BadId(id) => Self::error(
                400,
                &format!("bad node id {id:?}"),
                "give the member's node id as 3 or n3: POST /transfer/3",
            ),
        }
    }

    /// The answer to a request whose body is longer than `max` bytes.
    pub fn too_large(max: usize) -> Self {
        Self::error(
            413,
            &format!("request body over {max} bytes"),
            "the operator routes take no body: send none",
        )
    }
}

/// A JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Leader => "leader",
        NodeRole::Follower => "follower",
        NodeRole::Candidate => "candidate",
        NodeRole::PreCandidate => "pre-candidate",
        NodeRole::Learner => "learner",
        NodeRole::Removed => "removed",
    }
}

fn leader_json(leader: Option<NodeId>) -> String {
    leader.map_or_else(|| "null".to_string(), |l| l.0.to_string())
}

/// `"id":1,"role":"follower","leader":2,"term":3` of a status.
fn who(s: &Status) -> String {
    format!(
        "\"id\":{},\"role\":\"{}\",\"leader\":{},\"term\":{}",
        s.id.0,
        role_name(s.role),
        leader_json(s.leader),
        s.term
    )
}

/// How long the member has been up, and the startup grace of `/health`.
#[derive(Debug, Clone, Copy)]
pub struct Uptime {
    /// Since the endpoint started.
    pub up: Duration,
    /// The startup grace.
    pub grace: Duration,
}

/// Answers `route` from `op`.
pub fn answer(route: Route, op: &dyn Operable, uptime: Uptime) -> Reply {
    if !op.is_running() {
        return stopped(route);
    }
    match route {
        Route::Metrics => Reply {
            code: 200,
            content_type: METRICS_TYPE,
            body: op.metrics_text(),
            allow: None,
        },
        Route::Status => Reply::json(200, op.status_json()),
        Route::Health => health(&op.status(), uptime),
        Route::Leader => {
            let s = op.status();
            let leads = s.role == NodeRole::Leader;
            Reply::json(
                if leads { 200 } else { 503 },
                format!("{{\"is_leader\":{leads},{}}}", who(&s)),
            )
        }
        Route::Replica => {
            let s = op.status();
            let follows = matches!(s.role, NodeRole::Follower | NodeRole::Learner)
                && s.leader.is_some_and(|l| l != s.id);
            Reply::json(
                if follows { 200 } else { 503 },
                format!("{{\"is_replica\":{follows},{}}}", who(&s)),
            )
        }
        Route::HandBack => command("hand-back", op.hand_back()),
        Route::Transfer(to) => command(&format!("transfer to n{}", to.0), op.transfer(to)),
        Route::Activate => command("activate", op.activate()),
        Route::Drain => command("drain", op.drain()),
        Route::Undrain => command("undrain", op.undrain()),
    }
}

/// The answer of every route once the node thread has stopped.
fn stopped(route: Route) -> Reply {
    let hint = "the member's node thread has stopped: restart the member";
    match route {
        Route::Metrics | Route::Status => Reply::error(503, "the member is not running", hint),
        Route::Health => Reply::json(
            503,
            format!(
                "{{\"healthy\":false,\"reason\":\"node thread stopped\",\"hint\":{}}}",
                json_string(hint)
            ),
        ),
        _ => Reply::error(503, "the member is not running", hint),
    }
}

fn health(s: &Status, uptime: Uptime) -> Reply {
    let (healthy, reason) = if s.leader.is_some() {
        (true, "a leader is known".to_string())
    } else if uptime.up < uptime.grace {
        let left = uptime.grace - uptime.up;
        (
            true,
            format!(
                "no leader yet, within the startup grace ({} ms left)",
                left.as_millis()
            ),
        )
    } else {
        (false, "no leader known".to_string())
    };
    Reply::json(
        if healthy { 200 } else { 503 },
        format!(
            "{{\"healthy\":{healthy},\"reason\":{},{}}}",
            json_string(&reason),
            who(s)
        ),
    )
}

fn command(what: &str, result: Result<(), String>) -> Reply {
    match result {
        Ok(()) => Reply::json(
            200,
            format!("{{\"ok\":true,\"done\":{}}}", json_string(what)),
        ),
        Err(e) => Reply::error(
            409,
            &format!("{what} refused: {e}"),
            "GET /status shows this member's role and who leads; \
             leadership commands go to the leader",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_parses_with_its_method() {
        let cases = [
            ("GET", "/metrics", Route::Metrics),
            ("GET", "/health", Route::Health),
            ("HEAD", "/health", Route::Health),
            ("GET", "/leader", Route::Leader),
            ("GET", "/replica?x=1", Route::Replica),
            ("GET", "/status", Route::Status),
            ("POST", "/hand-back", Route::HandBack),
            ("POST", "/transfer/3", Route::Transfer(NodeId(3))),
            ("POST", "/transfer/n12", Route::Transfer(NodeId(12))),
            ("POST", "/activate", Route::Activate),
            ("POST", "/drain", Route::Drain),
            ("POST", "/undrain", Route::Undrain),
        ];
        for (method, url, route) in cases {
            assert_eq!(parse(method, url), Ok(route), "{method} {url}");
        }
    }

    #[test]
    fn wrong_methods_paths_and_ids_are_refused() {
        let e = parse("POST", "/leader").unwrap_err();
        assert_eq!(
            e,
            RouteError::MethodNotAllowed {
                method: "POST".into(),
                allow: "GET"
            }
        );
        assert_eq!(Reply::refused(&e).code, 405);
        assert_eq!(Reply::refused(&e).allow, Some("GET"));
        assert!(matches!(
            parse("GET", "/drain"),
            Err(RouteError::MethodNotAllowed { allow: "POST", .. })
        ));
        assert!(matches!(
            parse("GET", "/transfer/3"),
            Err(RouteError::MethodNotAllowed { allow: "POST", .. })
        ));
        for path in ["/", "/leader/", "/Leader", "/metrics/x", "/transfer"] {
            assert_eq!(
                parse("GET", path),
                Err(RouteError::NotFound(path.into())),
                "{path}"
            );
        }
        for id in [
            "",
            "n",
            "x3",
            "-1",
            "+1",
            "3n",
            "n-3",
            "1/2",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse("POST", &format!("/transfer/{id}")),
                Err(RouteError::BadId(id.into())),
                "{id}"
            );
        }
    }

    #[test]
    fn errors_are_json_with_a_hint() {
        let r = Reply::error(409, "said \"no\"\n", "a\\b");
        assert_eq!(
            r.body,
            "{\"error\":\"said \\\"no\\\"\\n\",\"hint\":\"a\\\\b\"}"
        );
        assert_eq!(json_string("\u{1}"), "\"\\u0001\"");
        let r = Reply::refused(&RouteError::BadId("x".into()));
        assert_eq!(r.code, 400);
        assert!(r.body.contains("3 or n3"), "{}", r.body);
        assert_eq!(Reply::too_large(1024).code, 413);
    }

    #[test]
    fn node_ids_parse_as_3_or_n3() {
        assert_eq!(parse_node_id("3"), Some(NodeId(3)));
        assert_eq!(parse_node_id("n3"), Some(NodeId(3)));
        assert_eq!(parse_node_id("N3"), None);
        assert_eq!(parse_node_id("nn3"), None);
    }
}
