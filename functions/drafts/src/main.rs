use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flowback::telemetry::init();
    let state = drafts::Drafts::from_env().await?;
    run(service_fn(|req| drafts::handle(&state, req))).await
}
