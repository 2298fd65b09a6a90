//! A WebSocket message: the payload of `websocket.receive` and `websocket.send`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::wire::latin1;

/// Exactly one of `text` or `bytes`, as the PAGI JSON shape requires.
///
/// ```
/// use pagi::Message;
/// let m: Message = serde_json::from_value(serde_json::json!({"text": "hi"})).unwrap();
/// assert_eq!(m, Message::Text("hi".into()));
/// assert!(serde_json::from_value::<Message>(serde_json::json!({"text": "a", "bytes": "b"})).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
pub enum Message {
    /// A text message (valid UTF-8 by construction).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

#[derive(Serialize, Deserialize)]
struct Repr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_latin1")]
    bytes: Option<Bytes>,
}

impl TryFrom<Repr> for Message {
    type Error = &'static str;
    fn try_from(r: Repr) -> Result<Self, Self::Error> {
        match (r.text, r.bytes) {
            (Some(t), None) => Ok(Message::Text(t)),
            (None, Some(b)) => Ok(Message::Binary(b)),
            _ => Err("a websocket message has exactly one of `text` or `bytes`"),
        }
    }
}

impl From<Message> for Repr {
    fn from(m: Message) -> Self {
        match m {
            Message::Text(t) => Repr {
                text: Some(t),
                bytes: None,
            },
            Message::Binary(b) => Repr {
                text: None,
                bytes: Some(b),
            },
        }
    }
}

mod opt_latin1 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => latin1::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        latin1::deserialize(d).map(Some)
    }
}
