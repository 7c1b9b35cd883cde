//! Which error an occurrence belongs to (DESIGN.md §4 "Identity").
//!
//! PostHog's `$exception_fingerprint` wins when present. Otherwise we compute our own: SHA-256 over
//! every exception of the list in order, each as its type, its message with volatile parts replaced,
//! and its significant frames as function + file (never line or column, which move with every deploy).
//! Each part is length-prefixed so that no two different inputs hash the same bytes.

use crate::exception::Exception;
use crate::limits::FINGERPRINT_BYTES;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// An opaque error identity: 1 to 512 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFingerprint {
    #[error("fingerprint is empty")]
    Empty,
    #[error("fingerprint is {0} bytes long; at most {FINGERPRINT_BYTES} are accepted")]
    TooLong(usize),
    #[error("fingerprint contains a control character")]
    ControlCharacter,
}

impl Fingerprint {
    pub fn parse(raw: &str) -> Result<Self, InvalidFingerprint> {
        if raw.is_empty() {
            Err(InvalidFingerprint::Empty)
        } else if raw.len() > FINGERPRINT_BYTES {
            Err(InvalidFingerprint::TooLong(raw.len()))
        } else if raw.chars().any(char::is_control) {
            Err(InvalidFingerprint::ControlCharacter)
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Our own fingerprint for an exception chain (lowercase hex SHA-256).
    pub fn compute(exceptions: &[Exception]) -> Self {
        let mut hasher = Sha256::new();
        let mut normalized = String::new();
        for exception in exceptions {
            hasher.update(b"E");
            field(&mut hasher, exception.kind().unwrap_or(""));
            normalized.clear();
            normalize_message(exception.message().unwrap_or(""), &mut normalized);
            field(&mut hasher, &normalized);
            for frame in exception.significant_frames() {
                hasher.update(b"F");
                field(&mut hasher, frame.function().unwrap_or(""));
                field(&mut hasher, frame.file_for_identity().unwrap_or(""));
            }
        }
        Self(hex::encode(hasher.finalize()))
    }
}

fn field(hasher: &mut Sha256, value: &str) {
    hasher.update((value.len() as u64).to_be_bytes());
    hasher.update(value.as_bytes());
}

impl TryFrom<String> for Fingerprint {
    type Error = InvalidFingerprint;
    fn try_from(raw: String) -> Result<Self, InvalidFingerprint> {
        Self::parse(&raw)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replaces the parts of a message that change between occurrences of one error: UUIDs become
/// `<uuid>`, runs of 8 or more hex digits that are not all decimal become `<hex>`, and every run of
/// decimal digits becomes `<num>`.
pub fn normalize_message(message: &str, out: &mut String) {
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if is_uuid_at(bytes, i) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if bytes[i].is_ascii_hexdigit() {
            let run = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            let token = &bytes[i..i + run];
            if run >= 8 && !token.iter().all(u8::is_ascii_digit) {
                out.push_str("<hex>");
            } else {
                replace_digit_runs(token, out);
            }
            i += run;
            continue;
        }
        // Copy a whole UTF-8 character (non-ASCII bytes are never hex digits).
        let ch_len = utf8_len(bytes[i]);
        out.push_str(&message[i..i + ch_len]);
        i += ch_len;
    }
}

/// Copies an ASCII hex token, turning each run of decimal digits into `<num>`.
fn replace_digit_runs(token: &[u8], out: &mut String) {
    let mut in_digits = false;
    for &b in token {
        if b.is_ascii_digit() {
            if !in_digits {
                out.push_str("<num>");
                in_digits = true;
            }
        } else {
            out.push(b as char);
            in_digits = false;
        }
    }
}

fn is_uuid_at(b: &[u8], i: usize) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    if b.len() < i + 36 {
        return false;
    }
    let mut pos = i;
    for (n, len) in GROUPS.iter().enumerate() {
        if !b[pos..pos + len].iter().all(u8::is_ascii_hexdigit) {
            return false;
        }
        pos += len;
        if n < 4 {
            if b[pos] != b'-' {
                return false;
            }
            pos += 1;
        }
    }
    // A longer hex run is not a UUID but something that merely starts like one.
    b.get(pos).is_none_or(|c| !c.is_ascii_hexdigit())
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let mut out = String::new();
        normalize_message(s, &mut out);
        out
    }

    #[test]
    fn volatile_parts_become_placeholders() {
        assert_eq!(
            norm("User 7 not found in database"),
            "User <num> not found in database"
        );
        assert_eq!(
            norm("order 01932b80-7777-7888-8999-aaaabbbbcccc failed"),
            "order <uuid> failed"
        );
        assert_eq!(norm("object deadbeef12 freed"), "object <hex> freed");
        assert_eq!(norm("id 123456789 missing"), "id <num> missing");
        assert_eq!(norm("abc12 and ff"), "abc<num> and ff");
        assert_eq!(norm("took 1.25s"), "took <num>.<num>s");
        assert_eq!(
            norm("Cannot read properties of undefined (reading 'toFixed')"),
            "Cannot read properties of undefined (reading 'toFixed')"
        );
        assert_eq!(norm("Ошибка 42 – ñandú 🚀"), "Ошибка <num> – ñandú 🚀");
    }

    #[test]
    fn fingerprint_limits() {
        assert_eq!(Fingerprint::parse(""), Err(InvalidFingerprint::Empty));
        assert!(Fingerprint::parse(&"a".repeat(512)).is_ok());
        assert_eq!(
            Fingerprint::parse(&"a".repeat(513)),
            Err(InvalidFingerprint::TooLong(513))
        );
        assert_eq!(
            Fingerprint::parse("a\nb"),
            Err(InvalidFingerprint::ControlCharacter)
        );
    }
}
