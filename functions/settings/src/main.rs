use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flowback::telemetry::init();
    run(service_fn(settings::handle)).await
}
