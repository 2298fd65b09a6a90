//! Helpers that give PAGI values their JSON shape.
//!
//! * Byte strings are JSON strings with one character per byte (ISO-8859-1), so every byte
//!   sequence round-trips exactly and ASCII stays readable.
//! * Flags are the integers `0` and `1`, as the PAGI spec requires; `true`/`false` are accepted
//!   on input.

use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;

/// Converts bytes to the ISO-8859-1 string that stands for them in JSON.
pub fn latin1_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Converts an ISO-8859-1 JSON string back to bytes; `None` if it holds a character above U+00FF.
pub fn latin1_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// `#[serde(with = "latin1")]` for [`Bytes`].
pub mod latin1 {
    use super::*;

    /// Serializes bytes as an ISO-8859-1 string.
    pub fn serialize<S: Serializer>(v: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&latin1_string(v))
    }

    /// Deserializes an ISO-8859-1 string into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        latin1_bytes(&s)
            .map(Bytes::from)
            .ok_or_else(|| de::Error::custom("byte string holds a character above U+00FF"))
    }

    use serde::Deserialize;
}

/// `#[serde(with = "flag")]` for `bool`: written as `0`/`1`.
pub mod flag {
    use super::*;

    /// Serializes a flag as `0` or `1`.
    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*v))
    }

    /// Deserializes `0`/`1` (or `false`/`true`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("0 or 1")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
                match v {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(E::custom("flag must be 0 or 1")),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
                match v {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(E::custom("flag must be 0 or 1")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `#[serde(with = "seconds")]` for [`std::time::Duration`]: a JSON number of seconds.
pub mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serializes a duration as fractional seconds.
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(v.as_secs_f64())
    }

    /// Deserializes a non-negative number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "opt_seconds")]` for `Option<Duration>`.
pub mod opt_seconds {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    /// Serializes a present duration as fractional seconds.
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => super::seconds::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes a non-negative number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::seconds::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let s = latin1_string(&all);
        assert_eq!(latin1_bytes(&s).unwrap(), all);
        assert_eq!(latin1_bytes("\u{100}"), None);
    }
}
