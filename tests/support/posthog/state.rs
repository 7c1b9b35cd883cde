//! What PostHog would keep in its database, plus the faults tests ask for.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{HogFunction, Issue, LoggedRequest, RevocationReason, RevokedToken, TokenKind};

// PostHog's OAUTH2_PROVIDER settings (posthog-api.md §1.2) for pre-registered applications.
pub(crate) const CODE_LIFETIME: time::Duration = time::Duration::minutes(5);
pub(crate) const ACCESS_TOKEN_LIFETIME: time::Duration = time::Duration::hours(1);
pub(crate) const REFRESH_TOKEN_LIFETIME: time::Duration = time::Duration::days(30);
pub(crate) const REFRESH_TOKEN_GRACE: time::Duration = time::Duration::minutes(2);

/// DRF's default is 100; a small page makes every client walk `next` in tests.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 2;

pub(crate) struct State {
    pub clock_offset: time::Duration,
    pub ids: IdSource,
    pub clients: HashMap<String, Client>,
    pub organizations: Vec<Organization>,
    pub projects: BTreeMap<i64, Project>,
    pub consent: Consent,
    pub codes: HashMap<String, AuthorizationCode>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub next_family: u64,
    pub revoked: Vec<RevokedToken>,
    pub faults: Faults,
    pub functions: Vec<HogFunction>,
    pub issues: Vec<Issue>,
    pub log: Vec<LoggedRequest>,
    pub page_size: usize,
    pub region: Option<String>,
    pub response_delay: std::time::Duration,
}

pub(crate) struct Client {
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
}

pub(crate) struct Organization {
    pub id: String,
    pub name: String,
}

pub(crate) struct Project {
    pub organization: String,
    pub name: String,
    pub uuid: String,
    pub api_token: String,
}

/// What the user picks on PostHog's consent screen; the stand-in clicks "Authorize" with it.
#[derive(Default)]
pub(crate) struct Consent {
    pub scope: Option<String>,
    pub scoped_teams: Vec<i64>,
    pub scoped_organizations: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub scope: Vec<String>,
    pub scoped_teams: Vec<i64>,
    pub scoped_organizations: Vec<String>,
}

pub(crate) struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// RFC 6749 §4.1.3: the token request must repeat redirect_uri only if the authorize request sent it.
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
    pub grant: Grant,
    pub issued_at: OffsetDateTime,
}

pub(crate) struct AccessToken {
    pub client_id: String,
    pub family: u64,
    pub grant: Grant,
    pub expires_at: OffsetDateTime,
    pub revoked: bool,
}

pub(crate) struct RefreshToken {
    pub client_id: String,
    pub family: u64,
    pub grant: Grant,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// Set only when rotation revoked it: a revoked-by-request token gets no grace period.
    pub rotated: bool,
    pub access_token: String,
    /// The refresh token minted when this one was used; a retry within the grace answers that pair.
    pub successor: Option<String>,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub deny_next_authorization: bool,
    pub token_unavailable: usize,
    pub hog_function_creates_seen: usize,
    pub create_failures: HashMap<usize, CreateFailure>,
    pub project_refusals: HashMap<i64, (u16, Value)>,
    pub internal_destination_refusal: Option<(u16, Value)>,
}

#[derive(Clone, Copy)]
pub(crate) struct CreateFailure {
    pub status: u16,
    /// The function is stored before the error goes out, like a proxy timing out after the commit.
    pub after_commit: bool,
}

impl State {
    pub fn new() -> Self {
        State {
            clock_offset: time::Duration::ZERO,
            ids: IdSource::new(),
            clients: HashMap::new(),
            organizations: Vec::new(),
            projects: BTreeMap::new(),
            consent: Consent::default(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            next_family: 1,
            revoked: Vec::new(),
            faults: Faults::default(),
            functions: Vec::new(),
            issues: Vec::new(),
            log: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
            region: None,
            response_delay: std::time::Duration::ZERO,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    pub fn organization_mut(&mut self, id: &str) -> &mut Organization {
        if let Some(index) = self.organizations.iter().position(|o| o.id == id) {
            &mut self.organizations[index]
        } else {
            self.organizations.push(Organization {
                id: id.to_owned(),
                name: format!("Organization {id}"),
            });
            let last = self.organizations.len() - 1;
            &mut self.organizations[last]
        }
    }

    /// Mints an access token and its refresh token, the pair every grant answers with.
    pub fn mint_pair(&mut self, client_id: &str, family: u64, grant: Grant) -> (String, String) {
        let now = self.now();
        let access = self.ids.token("pha_");
        let refresh = self.ids.token("phr_");
        self.access_tokens.insert(
            access.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                family,
                grant: grant.clone(),
                expires_at: now + ACCESS_TOKEN_LIFETIME,
                revoked: false,
            },
        );
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshToken {
                client_id: client_id.to_owned(),
                family,
                grant,
                created_at: now,
                revoked_at: None,
                rotated: false,
                access_token: access.clone(),
                successor: None,
            },
        );
        (access, refresh)
    }

    pub fn new_family(&mut self) -> u64 {
        let family = self.next_family;
        self.next_family += 1;
        family
    }

    pub fn revoke_access(&mut self, token: &str, reason: RevocationReason) {
        if let Some(access) = self.access_tokens.get_mut(token) {
            if !access.revoked {
                access.revoked = true;
                self.revoked.push(RevokedToken {
                    token: token.to_owned(),
                    kind: TokenKind::Access,
                    reason,
                });
            }
        }
    }

    /// DOT revokes a refresh token together with the access token issued alongside it.
    pub fn revoke_refresh(&mut self, token: &str, reason: RevocationReason) {
        let now = self.now();
        let Some(refresh) = self.refresh_tokens.get_mut(token) else {
            return;
        };
        if refresh.revoked_at.is_some() {
            return;
        }
        refresh.revoked_at = Some(now);
        refresh.rotated = reason == RevocationReason::Rotated;
        let access = refresh.access_token.clone();
        self.revoked.push(RevokedToken {
            token: token.to_owned(),
            kind: TokenKind::Refresh,
            reason,
        });
        self.revoke_access(&access, reason);
    }

    pub fn revoke_family(&mut self, family: u64, reason: RevocationReason) {
        let mut refresh: Vec<String> = self
            .refresh_tokens
            .iter()
            .filter(|(_, t)| t.family == family)
            .map(|(k, _)| k.clone())
            .collect();
        refresh.sort();
        for token in refresh {
            self.revoke_refresh(&token, reason);
        }
        let mut access: Vec<String> = self
            .access_tokens
            .iter()
            .filter(|(_, t)| t.family == family)
            .map(|(k, _)| k.clone())
            .collect();
        access.sort();
        for token in access {
            self.revoke_access(&token, reason);
        }
    }

    pub fn live_access_token(&self, token: &str) -> Option<&AccessToken> {
        let now = self.now();
        self.access_tokens
            .get(token)
            .filter(|t| !t.revoked && t.expires_at > now)
    }
}

/// Unique, unguessable-enough identifiers without another dependency: SHA-256 over a per-process
/// random seed and a counter. Uniqueness across stand-ins matters (a token from one must never work
/// on another); cryptographic strength does not.
pub(crate) struct IdSource {
    seed: [u8; 32],
    counter: u64,
}

impl IdSource {
    pub fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        hasher.write_i128(nanos);
        hasher.write_u32(std::process::id());
        let mut digest = Sha256::new();
        digest.update(hasher.finish().to_le_bytes());
        digest.update(nanos.to_le_bytes());
        IdSource {
            seed: digest.finalize().into(),
            counter: 0,
        }
    }

    fn next_bytes(&mut self) -> [u8; 32] {
        self.counter += 1;
        let mut digest = Sha256::new();
        digest.update(self.seed);
        digest.update(self.counter.to_le_bytes());
        digest.finalize().into()
    }

    /// `pha_…` / `phr_…`: the prefix plus 43 URL-safe characters, like PostHog's generators.
    pub fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(self.next_bytes()))
    }

    /// oauthlib's default: 30 characters from ASCII letters and digits.
    pub fn code(&mut self) -> String {
        self.alphanumeric(30)
    }

    pub fn alphanumeric(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut out = String::with_capacity(len);
        while out.len() < len {
            for byte in self.next_bytes() {
                if out.len() == len {
                    break;
                }
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
        out
    }

    /// A version-4-shaped UUID string.
    pub fn uuid(&mut self) -> String {
        let mut b = self.next_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}
