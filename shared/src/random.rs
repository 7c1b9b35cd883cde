//! Unguessable values from the operating system's generator (`getrandom`): OAuth `state`, PKCE
//! verifiers, connection ids and webhook signing secrets.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use secrecy::SecretString;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct RandomError(String);

pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| RandomError(e.to_string()))?;
    Ok(out)
}

/// 32 random bytes as 43 URL-safe characters: the OAuth `state` and the PKCE verifier.
pub fn url_token() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(bytes::<32>()?))
}

/// `c_` + 32 hex characters: a new one per connect, so a reconnect never reuses a webhook URL.
pub fn connection_id() -> Result<crate::ids::ConnectionId, RandomError> {
    crate::ids::ConnectionId::parse(&format!("c_{}", hex::encode(bytes::<16>()?)))
        .map_err(|e| RandomError(e.to_string()))
}

/// A Standard Webhooks secret, `whsec_` + base64 of 32 random bytes (DESIGN.md §5).
pub fn webhook_secret() -> Result<SecretString, RandomError> {
    Ok(SecretString::from(format!(
        "whsec_{}",
        STANDARD.encode(bytes::<32>()?)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn values_have_their_documented_shapes_and_differ() {
        let (a, b) = (url_token().unwrap(), url_token().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let id = connection_id().unwrap();
        assert!(id.as_str().starts_with("c_") && id.as_str().len() == 34);
        let secret = webhook_secret().unwrap();
        let raw = secret.expose_secret().strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(raw).unwrap().len(), 32);
    }
}
