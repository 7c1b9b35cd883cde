//! Identifiers parsed once at the edge: past `parse`, an invalid value cannot exist.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(String);

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parse_token(kind: &str, raw: &str, max: usize) -> Result<String, InvalidId> {
    if raw.is_empty() || raw.len() > max || !raw.chars().all(is_token_char) {
        return Err(InvalidId(format!(
            "{kind} must be 1 to {max} characters of A-Z, a-z, 0-9, '_' or '-'"
        )));
    }
    Ok(raw.to_owned())
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                parse_token($kind, raw, $max).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(raw: String) -> Result<Self, InvalidId> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_id!(
    /// A Flowback workspace, from the JWT claim `workspace_id`.
    WorkspaceId,
    "workspace id",
    64
);
token_id!(
    /// A Flowback channel that drafts of an environment go to.
    ChannelId,
    "channel id",
    64
);
token_id!(
    /// One PostHog connection of a workspace; part of the webhook URL.
    ConnectionId,
    "connection id",
    64
);

/// A PostHog project id (PostHog calls a project's main team an "environment").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct EnvironmentId(i64);

impl EnvironmentId {
    /// Accepts the decimal form PostHog uses in JSON and URLs.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        raw.trim()
            .parse::<i64>()
            .map_err(|_| {
                InvalidId(format!(
                    "environment id must be a positive integer, got {:?}",
                    truncate_for_error(raw)
                ))
            })
            .and_then(Self::try_from)
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for EnvironmentId {
    type Error = InvalidId;
    fn try_from(v: i64) -> Result<Self, InvalidId> {
        if v > 0 {
            Ok(Self(v))
        } else {
            Err(InvalidId(format!(
                "environment id must be a positive integer, got {v}"
            )))
        }
    }
}

impl From<EnvironmentId> for i64 {
    fn from(id: EnvironmentId) -> i64 {
        id.0
    }
}

impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Keeps error messages about hostile input short.
pub(crate) fn truncate_for_error(s: &str) -> &str {
    crate::limits::cut_to_bytes(s, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_follow_the_contract() {
        assert!(ChannelId::parse("eng-alerts_2").is_ok());
        assert!(ChannelId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "slash/", "é", "#hash", &"a".repeat(65)] {
            let err = ChannelId::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("channel id must be 1 to 64"),
                "{bad}"
            );
        }
    }

    #[test]
    fn environment_ids_are_positive_integers() {
        assert_eq!(EnvironmentId::parse("12345").unwrap().get(), 12345);
        assert!(EnvironmentId::parse("0").is_err());
        assert!(EnvironmentId::parse("-3").is_err());
        assert!(EnvironmentId::parse("12a").is_err());
        assert!(EnvironmentId::parse("99999999999999999999999").is_err());
    }

    #[test]
    fn ids_deserialize_through_their_parser() {
        assert!(serde_json::from_str::<WorkspaceId>("\"ws_demo\"").is_ok());
        assert!(serde_json::from_str::<WorkspaceId>("\"ws demo\"").is_err());
        assert!(serde_json::from_str::<EnvironmentId>("0").is_err());
    }
}
