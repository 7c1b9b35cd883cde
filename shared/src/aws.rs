//! AWS SDK configuration shared by every function: endpoints and credentials come from the SDK's
//! standard environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, …); timeouts and retries are ours, sized so
//! a webhook answer stays inside PostHog's 10 s and an API answer inside API Gateway's 30 s.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Per-call budget: a storage call that cannot finish in this time fails, and the caller answers 503.
#[derive(Debug, Clone, Copy)]
pub struct CallBudget {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
    pub max_attempts: u32,
}

impl CallBudget {
    /// The webhook: three attempts of at most 1 s each, 2.5 s overall per call.
    pub const WEBHOOK: Self = Self {
        connect: Duration::from_millis(500),
        attempt: Duration::from_secs(1),
        operation: Duration::from_millis(2500),
        max_attempts: 3,
    };
    /// Dashboard API calls.
    pub const API: Self = Self {
        connect: Duration::from_secs(1),
        attempt: Duration::from_secs(3),
        operation: Duration::from_secs(8),
        max_attempts: 3,
    };
}

pub async fn load(budget: CallBudget) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    // Lambda sets AWS_REGION and the credentials as environment variables. Taking them from there
    // directly skips building the default provider chains (profile files, SSO, IMDS), which took
    // ~3 ms of a ~5 ms init here; elsewhere the default chains still apply.
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(budget.connect)
                .operation_attempt_timeout(budget.attempt)
                .operation_timeout(budget.operation)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(budget.max_attempts))
        .load()
        .await
}
