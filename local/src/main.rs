//! `make run`: the whole stack on one port, the same handler code the Lambdas run.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    flowback_local::run(flowback_local::Settings::from_env()?).await
}
