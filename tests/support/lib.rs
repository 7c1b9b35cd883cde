//! What the black-box tests run against: stand-ins for the services the backend talks to.

pub mod fault_proxy;
pub mod harness;
pub mod posthog;
pub mod stack;
