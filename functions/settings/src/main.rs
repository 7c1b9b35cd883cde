use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flowback::telemetry::init();
    let state = settings::Settings::from_env().await?;
    run(service_fn(|req| settings::handle(&state, req))).await
}
