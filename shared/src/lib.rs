//! Flowback × PostHog: the domain (pure, synchronous) and the adapters the Lambdas share.
//!
//! Domain: [`delivery`] parses a webhook body, [`occurrence`] reads one `$exception` into what a draft
//! needs using [`fingerprint`], [`title`], [`priority`], [`links`]; [`prd`] renders the PRD.

pub mod delivery;
pub mod exception;
pub mod fingerprint;
pub mod ids;
mod lenient;
pub mod limits;
pub mod links;
pub mod markdown;
pub mod occurrence;
pub mod prd;
pub mod priority;
pub mod title;

pub mod api;
pub mod aws;
pub mod caller;
pub mod config;
#[cfg(feature = "posthog")]
pub mod connect;
pub mod draft;
pub mod issue;
pub mod metrics;
#[cfg(feature = "posthog")]
pub mod pkce;
#[cfg(feature = "posthog")]
pub mod posthog;
#[cfg(feature = "posthog")]
pub mod random;
pub mod secrets;
pub mod signature;
pub mod store;
pub mod telemetry;
