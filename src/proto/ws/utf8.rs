//! Incremental UTF-8 validation of a message that grows in one buffer.

/// How far a growing buffer has been validated.
///
/// Each call validates only the bytes appended since the last call plus the at most three bytes
/// of a multi-byte sequence that was incomplete at the previous end, so validating a message
/// piece by piece stays linear. Invalid bytes are reported as soon as they are seen: the
/// standard library's validator tells an invalid sequence (`error_len() == Some(_)`) from one
/// that is merely cut short (`None`), and rejects impossible prefixes (overlong forms,
/// surrogates, code points past U+10FFFF) at their first bad byte.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utf8Cursor {
    /// `buf[..valid]` is known to be valid UTF-8 ending on a char boundary.
    valid: usize,
}

/// The bytes are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

impl Utf8Cursor {
    /// Validates what `buf` gained since the last call (`buf` must only ever grow). A trailing
    /// incomplete sequence is fine here; [`Self::is_complete`] tells at the message end.
    pub(crate) fn advance(&mut self, buf: &[u8]) -> Result<(), InvalidUtf8> {
        let Some(new) = buf.get(self.valid..) else {
            return Err(InvalidUtf8);
        };
        match std::str::from_utf8(new) {
            Ok(_) => self.valid = buf.len(),
            Err(e) if e.error_len().is_none() => self.valid += e.valid_up_to(),
            Err(_) => return Err(InvalidUtf8),
        }
        Ok(())
    }

    /// Whether all of a buffer of `len` bytes has been validated (no sequence left open).
    pub(crate) fn is_complete(&self, len: usize) -> bool {
        self.valid == len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in pieces of `step`; the error position (bytes fed) or whether complete.
    fn run(bytes: &[u8], step: usize) -> Result<bool, usize> {
        let mut cur = Utf8Cursor::default();
        let mut buf = Vec::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            cur.advance(&buf).map_err(|_| buf.len())?;
        }
        Ok(cur.is_complete(buf.len()))
    }

    #[test]
    fn valid_text_in_any_pieces() {
        let text = "κόσμε — 😀 ascii ✓ 中文".as_bytes();
        for step in 1..=text.len() {
            assert_eq!(run(text, step), Ok(true), "step {step}");
        }
    }

    #[test]
    fn incomplete_at_end() {
        for bytes in [&b"ab\xe2\x82"[..], b"\xf0\x9f\x98", b"\xc3"] {
            for step in 1..=bytes.len() {
                assert_eq!(run(bytes, step), Ok(false));
            }
        }
    }

    #[test]
    fn invalid_reported_at_first_bad_byte() {
        // (bytes, how many bytes must have been seen before the error shows)
        let cases: [(&[u8], usize); 7] = [
            (b"ok\xff", 3),
            (b"\xc0\xaf", 1),         // overlong: C0 never starts a sequence
            (b"\xed\xa0\x80", 2),     // surrogate: ED A0 is impossible
            (b"\xf4\x90\x80\x80", 2), // > U+10FFFF: F4 90 is impossible
            (b"\xe2\x82x", 3),
            (
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
                13,
            ),
            (b"\x80", 1),
        ];
        for (bytes, at) in cases {
            assert_eq!(run(bytes, 1), Err(at), "{bytes:x?}");
            assert!(run(bytes, bytes.len()).is_err());
        }
    }
}
