use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flowback::telemetry::init();
    let state = webhook::Webhook::from_env().await?;
    run(service_fn(|req| webhook::handle(&state, req))).await
}
