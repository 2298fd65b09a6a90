//! Ordered header lists: `[[name, value], ...]`.

use bytes::Bytes;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::wire::{latin1_bytes, latin1_string};

/// An ordered list of header fields; duplicates are kept in order.
///
/// In request scopes the server lowercases every name and merges `cookie` fields into one
/// (joined with `"; "`). In events sent by the app, names may have any case; the server checks
/// them (see [`Headers::check`]) and writes them as given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Bytes, Bytes)>);

impl Headers {
    /// An empty list; allocates nothing.
    pub const fn new() -> Self {
        Headers(Vec::new())
    }

    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.0.push((name.into(), value.into()));
    }

    /// Builder form of [`push`](Self::push).
    pub fn with(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.push(name, value);
        self
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every value of `name` (ASCII case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Whether a field called `name` is present (ASCII case-insensitive).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every field called `name` (ASCII case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.0
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// The fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Bytes, Bytes)> {
        self.0.iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks every field the way a server must before writing it: a name is a non-empty RFC 9110
    /// token, and a value holds no CR, LF or NUL. Returns the first offending field's index.
    pub fn check(&self) -> Result<(), usize> {
        for (i, (n, v)) in self.0.iter().enumerate() {
            if !is_token(n) || !is_field_value(v) {
                return Err(i);
            }
        }
        Ok(())
    }
}

/// Whether `s` is a non-empty RFC 9110 token (the grammar of method and field names).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[b as usize])
}

/// Whether `b` is an RFC 9110 `tchar`.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// [`is_tchar`] for every byte: one load per byte on the hot path.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = matches!(c,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
            | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
        b += 1;
    }
    t
};

/// Whether a value may be written as a header value: no CR, LF or NUL (PAGI's rule).
pub fn is_field_value(v: &[u8]) -> bool {
    !v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// The fields an `http.response.early_hint` must not carry, lowercase: the connection-specific
/// ones (RFC 9110 §7.6.1, forbidden in HTTP/2 by RFC 9113 §8.2.2) and the body framing ones,
/// which make no sense on a 1xx response (RFC 9110 §8.6, RFC 9112 §6.1). A server fails the
/// `send` of an early hint that has one of them.
pub const EARLY_HINT_REFUSED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "content-length",
];

/// Whether the field `name` (any case) is one of [`EARLY_HINT_REFUSED`].
pub fn refused_in_early_hint(name: &[u8]) -> bool {
    EARLY_HINT_REFUSED
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
}

impl From<Vec<(Bytes, Bytes)>> for Headers {
    fn from(v: Vec<(Bytes, Bytes)>) -> Self {
        Headers(v)
    }
}

impl From<Headers> for Vec<(Bytes, Bytes)> {
    fn from(h: Headers) -> Self {
        h.0
    }
}

impl<N: Into<Bytes>, V: Into<Bytes>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a (Bytes, Bytes);
    type IntoIter = std::slice::Iter<'a, (Bytes, Bytes)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            seq.serialize_element(&[latin1_string(n), latin1_string(v)])?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of [name, value] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
                while let Some((n, v)) = seq.next_element::<(String, String)>()? {
                    let conv = |s: &str| {
                        latin1_bytes(s).map(Bytes::from).ok_or_else(|| {
                            serde::de::Error::custom("header holds a character above U+00FF")
                        })
                    };
                    out.push((conv(&n)?, conv(&v)?));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_hint_refusals() {
        for name in [
            "Connection",
            "keep-alive",
            "TE",
            "Transfer-Encoding",
            "content-length",
        ] {
            assert!(refused_in_early_hint(name.as_bytes()), "{name}");
        }
        for name in ["link", "Link", "x-trace", "content-type", "tea"] {
            assert!(!refused_in_early_hint(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_ordered() {
        let h = Headers::new()
            .with("Set-Cookie", "a=1")
            .with("x", "y")
            .with("set-cookie", "b=2");
        assert_eq!(h.get("set-cookie").unwrap(), "a=1");
        assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), ["a=1", "b=2"]);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn check_rejects_crlf_nul_and_bad_names() {
        assert_eq!(Headers::new().with("a", "ok\tvalue").check(), Ok(()));
        assert_eq!(Headers::new().with("a", "x\r\ny: z").check(), Err(0));
        assert_eq!(
            Headers::new().with("ok", "1").with("a", "x\0").check(),
            Err(1)
        );
        assert_eq!(Headers::new().with("a b", "x").check(), Err(0));
        assert_eq!(Headers::new().with("", "x").check(), Err(0));
        assert_eq!(Headers::new().with("a:", "x").check(), Err(0));
    }

    #[test]
    fn json_shape() {
        let h = Headers::new().with("a", "b\u{e9}".as_bytes().to_vec());
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(j, r#"[["a","bÃ©"]]"#);
        let back: Headers = serde_json::from_str(&j).unwrap();
        assert_eq!(back, h);
    }
}
