//! The local stand-in for API Gateway's JWT authorizer: HS256 tokens signed with `LOCAL_JWT_SECRET`,
//! issuer `flowback-local`, audience `flowback`, claims `sub`, `workspace_id`, `exp`.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const DEFAULT_SECRET: &str = "flowback-local-development-secret";
pub const ISSUER: &str = "flowback-local";
pub const AUDIENCE: &str = "flowback";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub workspace_id: String,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(secret: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            key: DecodingKey::from_secret(secret.as_bytes())?,
            validation,
        })
    }

    /// The claims as API Gateway passes them to a Lambda: a string map. `None` answers 401.
    pub fn verify(&self, authorization: Option<&str>) -> Option<HashMap<String, String>> {
        let token = authorization?.strip_prefix("Bearer ")?;
        let data = decode::<Claims>(token, &self.key, &self.validation).ok()?;
        let c = data.claims;
        Some(HashMap::from([
            ("sub".to_owned(), c.sub),
            ("workspace_id".to_owned(), c.workspace_id),
            ("exp".to_owned(), c.exp.to_string()),
            ("iss".to_owned(), c.iss),
            ("aud".to_owned(), c.aud),
        ]))
    }
}

/// A token for `workspace_id`/`sub`, valid for `seconds`.
pub fn mint(secret: &str, workspace_id: &str, sub: &str, seconds: i64) -> String {
    let claims = Claims {
        sub: sub.to_owned(),
        workspace_id: workspace_id.to_owned(),
        exp: time::OffsetDateTime::now_utc().unix_timestamp() + seconds,
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
    };
    EncodingKey::from_secret(secret.as_bytes())
        .and_then(|key| encode(&Header::new(Algorithm::HS256), &claims, &key))
        .unwrap_or_default()
}

pub fn how_to_mint(secret: &str, port: u16) -> String {
    let token = mint(secret, "ws_demo", "user_demo", 24 * 3600);
    format!(
        "Dashboard routes need a token (HS256 with LOCAL_JWT_SECRET, iss {ISSUER}, aud {AUDIENCE}, claims sub, workspace_id, exp).\n\
         One for workspace ws_demo, valid 24 h:\n  export TOKEN={token}\n\
         Then:\n  curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/drafts\n\
         Another workspace: cargo run -q -p flowback-local --bin mint-token -- <workspace_id> <sub>"
    )
}
