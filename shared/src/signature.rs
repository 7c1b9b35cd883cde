//! Standard Webhooks verification of PostHog deliveries (DESIGN.md §5): `webhook-id`,
//! `webhook-timestamp` within ±5 minutes, `webhook-signature` with one or more space-separated
//! `v1,<base64>` values, HMAC-SHA256 keyed with the base64-decoded secret over
//! `{id}.{timestamp}.{body}`, compared in constant time.
//!
//! Written on RustCrypto's `hmac`/`sha2` rather than the `standardwebhooks` crate: that crate hashes
//! with a software-only SHA-256 and copies the whole body into a new string, which alone made the
//! per-delivery work exceed its 3× budget; `sha2` uses the CPU's SHA instructions (x86 SHA-NI,
//! ARMv8 on Graviton). The crate stays a dev-dependency: tests check both agree.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far `webhook-timestamp` may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing or unreadable webhook-id, webhook-timestamp or webhook-signature header")]
    MissingHeaders,
    #[error("webhook-timestamp is not a Unix time within 5 minutes of now")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
    #[error("the signing secret of this connection is unusable")]
    BadSecret,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeaders)
}

fn key(secret: &SecretString) -> Result<Vec<u8>, SignatureError> {
    let raw = secret.expose_secret();
    STANDARD
        .decode(raw.strip_prefix("whsec_").unwrap_or(raw))
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or(SignatureError::BadSecret)
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Result<[u8; 32], SignatureError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SignatureError::BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().into())
}

/// Verifies a delivery at `now` (Unix seconds).
pub fn verify_at(
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Stale)?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    let expected = mac(&key(secret)?, id, timestamp, body)?;
    let mut matched = subtle::Choice::from(0);
    for candidate in signatures.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        if let Ok(given) = STANDARD.decode(encoded) {
            if given.len() == expected.len() {
                matched |= given.ct_eq(&expected);
            }
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

pub fn verify(
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_at(
        secret,
        headers,
        body,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )
}

/// `v1,<base64>` as PostHog sends it; used by the local stack's sample feeder and by tests.
pub fn sign(
    secret: &SecretString,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let sig = mac(&key(secret).ok()?, webhook_id, &timestamp.to_string(), body).ok()?;
    Some(format!("v1,{}", STANDARD.encode(sig)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn matches_the_specifications_test_vector() {
        // From the Standard Webhooks reference implementation's tests.
        let secret = SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = sign(&secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body).unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let h = headers("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, &sig);
        assert_eq!(verify_at(&secret, &h, body, 1649367553 + 299), Ok(()));
        assert_eq!(
            verify_at(&secret, &h, body, 1649367553 + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_at(&secret, &h, body, 1649367553 - 301),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn agrees_with_the_reference_crate() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let reference = standardwebhooks::Webhook::new(secret).unwrap();
        let ours = SecretString::from(secret);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for body in [
            &b"{}"[..],
            br#"{"event":{"event":"$exception"}}"#,
            "ünïcødé 🚀".as_bytes(),
        ] {
            let theirs = reference.sign("msg_x", now, body).unwrap();
            assert_eq!(sign(&ours, "msg_x", now, body).unwrap(), theirs);
            assert!(reference
                .verify(body, &headers("msg_x", now, &theirs))
                .is_ok());
            assert_eq!(verify(&ours, &headers("msg_x", now, &theirs), body), Ok(()));
        }
    }

    #[test]
    fn accepts_one_valid_signature_among_several_and_rejects_tampering() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let now = 1_800_000_000;
        let body = br#"{"event":{"event":"$exception"}}"#;
        let sig = sign(&secret, "msg_1", now, body).unwrap();
        let ok = |h: &HeaderMap, b: &[u8]| verify_at(&secret, h, b, now);
        assert_eq!(ok(&headers("msg_1", now, &sig), body), Ok(()));
        assert_eq!(
            ok(
                &headers("msg_1", now, &format!("v1,AAAA {sig} v2,zzz")),
                body
            ),
            Ok(())
        );
        assert_eq!(
            ok(&headers("msg_1", now, &sig), b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&headers("msg_2", now, &sig), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&headers("msg_1", now, "v1,"), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&headers("msg_1", now, &sig[..sig.len() - 4]), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&headers("msg_1", now, &sig.replacen("v1,", "v2,", 1)), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&HeaderMap::new(), body),
            Err(SignatureError::MissingHeaders)
        );
        let bad_secret = SecretString::from("whsec_***");
        assert_eq!(
            verify_at(&bad_secret, &headers("msg_1", now, &sig), body, now),
            Err(SignatureError::BadSecret)
        );
    }
}
