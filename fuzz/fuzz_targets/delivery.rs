//! Any bytes through the whole domain path a delivery takes: parse, read the occurrence, compute our
//! own fingerprint, render the PRD. Nothing may panic.
#![no_main]

use flowback::{delivery, fingerprint::Fingerprint, occurrence::Occurrence, prd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = delivery::parse(data) else { return };
    let _ = Fingerprint::compute(d.event.properties.exception_list.as_deref().unwrap_or(&[]));
    let Ok(o) = Occurrence::from_delivery(&d, time::OffsetDateTime::UNIX_EPOCH) else { return };
    let md = prd::render(&o.first_prd_input());
    assert!(md.len() <= flowback::limits::PRD_BYTES);
    assert!(o.title.chars().count() <= flowback::limits::TITLE_CHARS);
});
