//! `openai-upstream --listen ADDR [--model NAME]…`: the OpenAI-compatible upstream of
//! [`plannt_testkit::openai`] as a process of its own, for the interop suites. It prints
//! `listening on http://ADDR` (the port bound, for `127.0.0.1:0`) on one line of standard output,
//! then serves until it is killed. For tests only: it is not part of the `plannt` binary.

use plannt_testkit::openai::{MODELS, OpenAi};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut models = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => listen = value,
            ("--model", Some(value)) => models.push(value),
            _ => {
                eprintln!("usage: openai-upstream [--listen 127.0.0.1:0] [--model NAME]…");
                std::process::exit(2);
            }
        }
    }
    if models.is_empty() {
        models = MODELS.iter().map(|m| m.to_string()).collect();
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("openai-upstream: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let upstream = OpenAi::serve(listener, models);
    println!("listening on {}", upstream.base_url());
    // Ends when the process is killed.
    std::future::pending::<()>().await;
}
