//! Reading typed values out of a parsed TOML table, recording a
//! [`Problem`] naming the key for everything wrong instead of stopping at
//! the first: unknown keys, missing keys, wrong types, numbers out of
//! range.

use std::net::SocketAddr;
use std::time::Duration;

use toml::{Table, Value};

use super::error::{Problem, ProblemKind};

/// The longest duration a file may give (a day): longer timers mean a
/// mistake (seconds taken for milliseconds), and keep tick arithmetic far
/// from overflowing.
pub(super) const MAX_MS: u64 = 86_400_000;

/// Whether a key must be present.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    Required(&'static str),
    Optional,
}
pub(super) use Need::{Optional, Required};

/// The problems found so far.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, kind: ProblemKind) {
        self.0.push(Problem {
            key: key.into(),
            kind,
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `path.key`, or `key` at the top.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A table of the file and where it is.
#[derive(Clone, Copy)]
pub(super) struct Tbl<'a> {
    table: &'a Table,
    path: &'a str,
}

/// A table, its path owned (for array elements).
pub(super) struct Owned<'a> {
    table: &'a Table,
    /// Its key, e.g. `cores[1]`.
    pub(super) path: String,
}

impl<'a> Owned<'a> {
    /// The table, to read.
    pub(super) fn tbl(&self) -> Tbl<'_> {
        Tbl {
            table: self.table,
            path: &self.path,
        }
    }
}

impl<'a> Tbl<'a> {
    /// `table` at `path`, reporting every key not in `known`.
    pub(super) fn new(
        table: &'a Table,
        path: &'a str,
        known: &'static [&'static str],
        p: &mut Problems,
    ) -> Self {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                p.add(join(path, key), ProblemKind::UnknownKey { known });
            }
        }
        Self { table, path }
    }

    /// The key `key` of this table.
    pub(super) fn key(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// Whether `key` is given.
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn get(&self, key: &str, need: Need, p: &mut Problems) -> Option<&'a Value> {
        let v = self.table.get(key);
        if let (None, Required(hint)) = (v, need) {
            p.add(self.key(key), ProblemKind::Missing { hint });
        }
        v
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value, p: &mut Problems) {
        let found = v.type_str();
        p.add(self.key(key), ProblemKind::WrongType { expected, found });
    }

    /// A non-negative integer at most `max`.
    pub(super) fn uint(
        &self,
        key: &str,
        need: Need,
        min: u64,
        max: u64,
        allowed: &'static str,
        p: &mut Problems,
    ) -> Option<u64> {
        let v = self.get(key, need, p)?;
        let Some(n) = v.as_integer() else {
            self.wrong(key, "an integer", v, p);
            return None;
        };
        match u64::try_from(n) {
            Ok(u) if (min..=max).contains(&u) => Some(u),
            _ => {
                p.add(self.key(key), ProblemKind::OutOfRange { value: n, allowed });
                None
            }
        }
    }

    /// Any non-negative integer.
    pub(super) fn u64(&self, key: &str, need: Need, p: &mut Problems) -> Option<u64> {
        self.uint(key, need, 0, u64::MAX, "must be 0 or more", p)
    }

    /// A count of at least 1 that fits a `usize`.
    pub(super) fn count(&self, key: &str, p: &mut Problems) -> Option<usize> {
        let max = usize::MAX as u64;
        let n = self.uint(key, Optional, 1, max, "must be 1 or more", p)?;
        usize::try_from(n).ok()
    }

    /// Milliseconds, 0 to a day (`min` the least allowed).
    pub(super) fn ms(&self, key: &str, min: u64, p: &mut Problems) -> Option<Duration> {
        let allowed = if min == 0 {
            "must be 0 to 86400000 (a day)"
        } else {
            "must be 1 to 86400000 (a day)"
        };
        self.uint(key, Optional, min, MAX_MS, allowed, p)
            .map(Duration::from_millis)
    }

    /// A boolean.
    pub(super) fn bool(&self, key: &str, p: &mut Problems) -> Option<bool> {
        let v = self.get(key, Optional, p)?;
        let b = v.as_bool();
        if b.is_none() {
            self.wrong(key, "true or false", v, p);
        }
        b
    }

    /// A non-empty string.
    pub(super) fn str(&self, key: &str, need: Need, p: &mut Problems) -> Option<&'a str> {
        let v = self.get(key, need, p)?;
        match v.as_str() {
            None => {
                self.wrong(key, "a string", v, p);
                None
            }
            Some("") => {
                p.add(self.key(key), ProblemKind::Empty);
                None
            }
            Some(s) => Some(s),
        }
    }

    /// One of `choices`.
    pub(super) fn choice(
        &self,
        key: &str,
        choices: &'static [&'static str],
        p: &mut Problems,
    ) -> Option<&'a str> {
        let s = self.str(key, Optional, p)?;
        if choices.contains(&s) {
            Some(s)
        } else {
            let value = s.to_string();
            p.add(self.key(key), ProblemKind::UnknownChoice { value, choices });
            None
        }
    }

    /// An IP address and port.
    pub(super) fn addr(&self, key: &str, need: Need, p: &mut Problems) -> Option<SocketAddr> {
        let s = self.str(key, need, p)?;
        match s.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                let (value, reason) = (s.to_string(), e.to_string());
                p.add(self.key(key), ProblemKind::BadAddress { value, reason });
                None
            }
        }
    }

    /// A sub-table, its unknown keys reported.
    pub(super) fn table(
        &self,
        key: &str,
        need: Need,
        known: &'static [&'static str],
        p: &mut Problems,
    ) -> Option<Owned<'a>> {
        let v = self.get(key, need, p)?;
        let Some(table) = v.as_table() else {
            self.wrong(key, "a table", v, p);
            return None;
        };
        let path = self.key(key);
        Tbl::new(table, &path, known, p);
        Some(Owned { table, path })
    }

    /// An array of tables (`[[key]]`, or an array of inline tables), each
    /// one's unknown keys reported; absent is empty unless required.
    pub(super) fn tables(
        &self,
        key: &str,
        need: Need,
        known: &'static [&'static str],
        p: &mut Problems,
    ) -> Vec<Owned<'a>> {
        let Some(v) = self.get(key, need, p) else {
            return Vec::new();
        };
        let Some(items) = v.as_array() else {
            self.wrong(key, "an array of tables", v, p);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.key(key));
            match item.as_table() {
                Some(table) => {
                    Tbl::new(table, &path, known, p);
                    out.push(Owned { table, path });
                }
                None => {
                    let found = item.type_str();
                    p.add(
                        path,
                        ProblemKind::WrongType {
                            expected: "a table",
                            found,
                        },
                    );
                }
            }
        }
        if out.is_empty() && items.is_empty() {
            if let Required(hint) = need {
                p.add(self.key(key), ProblemKind::Missing { hint });
            }
        }
        out
    }
}
