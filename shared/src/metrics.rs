//! CloudWatch metrics through the embedded metric format: one JSON line on stdout per data point,
//! which Lambda's log pipeline turns into a metric in namespace `Flowback` without an API call.

use serde_json::json;

pub const NAMESPACE: &str = "Flowback";

/// Emits `name` = `value` (a count) with one dimension.
pub fn count(name: &str, value: u64, dimension: (&str, &str)) {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let (dim_name, dim_value) = dimension;
    let line = json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[dim_name]],
                "Metrics": [{"Name": name, "Unit": "Count"}]
            }]
        },
        dim_name: dim_value,
        name: value
    });
    println!("{line}");
}
