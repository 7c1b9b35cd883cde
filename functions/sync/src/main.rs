use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flowback::telemetry::init();
    let state = sync::Sync::from_env().await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        sync::handle(&state, event)
    }))
    .await
}
