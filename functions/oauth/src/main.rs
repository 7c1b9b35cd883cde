use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flowback::telemetry::init();
    let state = oauth::OAuth::from_env().await?;
    run(service_fn(|req| oauth::handle(&state, req))).await
}
