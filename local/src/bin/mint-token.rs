//! Prints a local dashboard token: `mint-token <workspace_id> [sub] [seconds]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(workspace) = args.first() else {
        eprintln!("usage: mint-token <workspace_id> [sub] [seconds]");
        std::process::exit(2);
    };
    let sub = args.get(1).map(String::as_str).unwrap_or("user_demo");
    let seconds = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(24 * 3600);
    let secret = std::env::var("LOCAL_JWT_SECRET")
        .unwrap_or_else(|_| flowback_local::auth::DEFAULT_SECRET.into());
    println!(
        "{}",
        flowback_local::auth::mint(&secret, workspace, sub, seconds)
    );
}
