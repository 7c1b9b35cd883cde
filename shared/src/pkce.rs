//! PKCE S256 (RFC 7636), which PostHog requires of every client.
//!
//! Written out rather than taken from a crate: S256 is one SHA-256 and one base64url over crates
//! this project already uses, while `pkce` (unmaintained since 0.2) and `oauth2` (which brings
//! chrono, rand 0.8 and an HTTP abstraction of its own) would add more than they save. Tested
//! against RFC 7636's own example and the PostHog stand-in's independent implementation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub struct Pkce {
    /// 43 characters from 32 random bytes: the upper end of RFC 7636's entropy advice.
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Result<Self, crate::random::RandomError> {
        let verifier = SecretString::from(crate::random::url_token()?);
        let challenge = challenge(&verifier);
        Ok(Self {
            verifier,
            challenge,
        })
    }
}

/// `BASE64URL(SHA256(ASCII(verifier)))`.
pub fn challenge(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_7636_appendix_b() {
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifiers_are_well_formed_and_fresh() {
        let (a, b) = (Pkce::generate().unwrap(), Pkce::generate().unwrap());
        assert_eq!(a.verifier.expose_secret().len(), 43);
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_eq!(a.challenge, challenge(&a.verifier));
    }
}
