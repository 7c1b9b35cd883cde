// Shared by the domain test files; each file uses part of it.
#![allow(dead_code)]

use flowback::delivery;
use flowback::occurrence::Occurrence;
use time::macros::datetime;
use time::OffsetDateTime;

pub const RECEIVED_AT: OffsetDateTime = datetime!(2026-12-04 16:00:00 UTC);

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/posthog/{name}.webhook.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn occurrence(body: &[u8]) -> Occurrence {
    let d = delivery::parse(body).expect("parses");
    Occurrence::from_delivery(&d, RECEIVED_AT).expect("is an exception")
}

pub fn occurrence_of_json(v: serde_json::Value) -> Occurrence {
    occurrence(v.to_string().as_bytes())
}

pub fn prd_input_for(o: &Occurrence) -> flowback::prd::PrdInput<'_> {
    o.first_prd_input()
}
