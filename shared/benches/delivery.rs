//! In-process work per delivery (verify + parse + fingerprint + PRD) against a bare `serde_json`
//! parse of the same bytes (DESIGN.md §9: within 3×). `make bench` prints the ratio.

use criterion::{criterion_group, criterion_main, Criterion};
use flowback::delivery;
use flowback::fingerprint::Fingerprint;
use flowback::occurrence::Occurrence;
use flowback::prd;
use flowback::signature;
use http::HeaderMap;
use secrecy::SecretString;
use std::hint::black_box;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/posthog/{name}.webhook.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).expect("fixture")
}

fn signed(secret: &SecretString, body: &[u8]) -> HeaderMap {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut h = HeaderMap::new();
    h.insert("webhook-id", "msg_bench".parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    let sig = signature::sign(secret, "msg_bench", ts, body).unwrap();
    h.insert("webhook-signature", sig.parse().unwrap());
    h
}

fn process(secret: &SecretString, headers: &HeaderMap, body: &[u8]) -> usize {
    signature::verify(secret, headers, body).unwrap();
    let d = delivery::parse(body).unwrap();
    let o = Occurrence::from_delivery(&d, time::OffsetDateTime::UNIX_EPOCH).unwrap();
    // Our own fingerprint too, as for an event PostHog has not fingerprinted.
    let own = Fingerprint::compute(d.event.properties.exception_list.as_deref().unwrap_or(&[]));
    prd::render(&o.first_prd_input()).len() + own.as_str().len()
}

fn bench(c: &mut Criterion) {
    let secret = SecretString::from("whsec_dGVzdC1zaWduaW5nLXNlY3JldC0zMi1ieXRlcyEhIQ==");
    for name in ["web-uncaught_type_error", "python-handled_chain"] {
        let body = fixture(name);
        let headers = signed(&secret, &body);
        let mut group = c.benchmark_group(name);
        group.bench_function("serde_json::from_slice::<Value>", |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap())
            })
        });
        group.bench_function("verify+parse+fingerprint+prd", |b| {
            b.iter(|| black_box(process(&secret, &headers, black_box(&body))))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
