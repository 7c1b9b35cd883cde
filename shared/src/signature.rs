//! Standard Webhooks verification of PostHog deliveries (DESIGN.md §5): `webhook-id`,
//! `webhook-timestamp` within ±5 minutes, `webhook-signature` with one or more `v1,<base64>` values,
//! HMAC-SHA256 over `{id}.{timestamp}.{body}` compared in constant time. The `standardwebhooks` crate
//! (the specification's reference implementation) does the cryptography.

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use standardwebhooks::{Webhook, WebhookError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing webhook-id, webhook-timestamp or webhook-signature header")]
    MissingHeaders,
    #[error("webhook-timestamp is not within 5 minutes of now")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
    #[error("the body is not UTF-8, so it cannot be a signed JSON delivery")]
    NotUtf8,
    #[error("the signing secret of this connection is unusable")]
    BadSecret,
}

pub fn verify(
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let webhook = Webhook::new(secret.expose_secret()).map_err(|_| SignatureError::BadSecret)?;
    webhook.verify(body, headers).map_err(|e| match e {
        WebhookError::MissingHeader(_) | WebhookError::InvalidHeader(_) => {
            SignatureError::MissingHeaders
        }
        WebhookError::InvalidTimestamp
        | WebhookError::TimestampTooOldError
        | WebhookError::FutureTimestampError => SignatureError::Stale,
        WebhookError::InvalidPayload => SignatureError::NotUtf8,
        WebhookError::InvalidSecret(_) => SignatureError::BadSecret,
        WebhookError::InvalidSignature => SignatureError::Mismatch,
    })
}

/// Signs like PostHog does; used by the local stack's sample feeder and by tests.
pub fn sign(
    secret: &SecretString,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    Webhook::new(secret.expose_secret())
        .ok()?
        .sign(webhook_id, timestamp, body)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn accepts_a_valid_signature_among_several_and_rejects_tampering() {
        let secret = SecretString::from(SECRET);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = br#"{"event":{"event":"$exception"}}"#;
        let sig = sign(&secret, "msg_1", now, body).unwrap();
        assert!(verify(&secret, &headers("msg_1", now, &sig), body).is_ok());
        let several = format!("v1,AAAA {sig} v2,zzz");
        assert!(verify(&secret, &headers("msg_1", now, &several), body).is_ok());
        assert_eq!(
            verify(&secret, &headers("msg_1", now, &sig), b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret, &headers("msg_2", now, &sig), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret, &headers("msg_1", now, "v1,"), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &secret,
                &headers(
                    "msg_1",
                    now - 301,
                    &sign(&secret, "msg_1", now - 301, body).unwrap()
                ),
                body
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&secret, &HeaderMap::new(), body),
            Err(SignatureError::MissingHeaders)
        );
    }
}
