//! `plannt get | post | request URL`: curl that pays.
//!
//! The body goes to stdout untouched; everything else to stderr. Before paying, every invoice
//! is checked and the amount reserved against the budgets; `--dry-run` shows the price and pays
//! nothing.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use plannt_client::{Dialect, Event, Options, Outcome, Request};
use serde_json::json;

use crate::error::{Error, exit};
use crate::out::{self, errln, outln, sats};
use crate::setup::{self, Setup};

const EXIT_CODES: &str = concat!(
    crate::error::exit_status!(),
    "

Timeouts: --connect-timeout (connect_timeout_secs, PLANNT_CONNECT_TIMEOUT_SECS, default 10 s) bounds each connection, --max-time (max_time_secs, PLANNT_MAX_TIME_SECS, default 120 s) the whole request, payment included. A network error (7) names its cause: connection refused, unknown host (DNS), TLS handshake, connect timeout, max time, connection reset. When the max time runs out while a payment is in flight, the exit is 5 and the payment stays pending; when it runs out after paying, the token is kept: run the same request again to finish either, never paying twice. When the answer to a paid request is lost after the credential was sent (the connection cut or reset before the answer, `409` with x-l402: pending), the same credential is presented again for the same request (after a network failure: 250 ms, doubling, at most 5 more times; a 409 is waited out by its Retry-After; all within --max-time): a Plannt gateway answers it with the answer it kept (x-l402: replayed), and the note says the answer was recovered. If the server answers that retry with a 402, it kept no answer: the exit is 7 with \"paid; the answer was lost and the server kept none\", and nothing is paid again. A paid request still without an answer (the max time ran out, the run was killed, the body broke off) is listed by `plannt ledger` and sent again by `plannt ledger retry` (or by running the same request again), with the same credential, never paying again. A wallet that cannot be reached is a failed payment (5) that paid nothing and holds no budget. --dry-run runs every check a payment would, the budgets included, and reserves nothing.

Budgets come from the paying side's config.toml (~/.config/plannt/config.toml, unless PLANNT_CONFIG_DIR or XDG_CONFIG_HOME move it: see plannt --help), each key overridable by the environment: max_sats_per_request (PLANNT_MAX_SATS_PER_REQUEST, default 500), budget_hourly_sats (2000), budget_daily_sats (5000), budget_total_sats (none), max_fee_sats (10), allowed_hosts (PLANNT_ALLOWED_HOSTS, comma-separated, *.example.com allowed; default any), allow_private_networks (PLANNT_ALLOW_PRIVATE_NETWORKS; for plannt get default true, --no-private-networks refuses loopback, private and link-local addresses), allow_insecure_http (PLANNT_ALLOW_INSECURE_HTTP, default false: a challenge over plain http is paid only from a loopback host, or with --allow-insecure-http), pay_dialects (PLANNT_PAY_DIALECTS, default l402,mpp,x402: the payment dialects paid, in order of preference when a 402 offers several; one left out is never paid, and --dialect only narrows it), session_deposit_sats (PLANNT_SESSION_DEPOSIT_SATS, e.g. api.example.com=500; default none: the most a prepaid MPP session with a host may hold; see plannt session), wallet (PLANNT_WALLET). allowed_hosts binds every request, redirects included. The wallet's own API (e.g. /_plannt/dev/ of a dev+http wallet, /api/ of LNbits, the whole LND, CLN or phoenixd address) is never sent a request, whatever the settings. Every payment is recorded in ledger.sqlite under the data directory (PLANNT_DATA_DIR); see `plannt ledger`."
);

#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Args {
    /// The URL. Without a scheme (`localhost:8402/v1/demo`, `api.example.com/v1/x`) it is
    /// http:// for a loopback host and https:// for any other.
    url: String,
    /// The method [default: GET, or POST for `plannt post` and with -d].
    #[arg(short = 'X', long = "request")]
    method: Option<String>,
    /// A header, "Name: value". Repeat for more.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The body: text, @FILE, or - for standard input.
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// Print the response status line and headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
    /// Write the body to FILE instead of standard output.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// No progress or notes on stderr (errors still show).
    #[arg(short = 's', long)]
    silent: bool,
    /// Follow redirects (up to 10). Each hop is checked as the URL given is (allowed hosts, the
    /// wallet's API, private addresses); the host that asks for payment is the one checked and paid.
    #[arg(short = 'L', long)]
    location: bool,
    /// Refuse loopback, private and link-local addresses (after DNS, and on every redirect), as
    /// `plannt mcp` does by default.
    #[arg(long)]
    no_private_networks: bool,
    /// Pay a challenge that came over plain http from a host that is not loopback (anyone on the
    /// path could have written it).
    #[arg(long)]
    allow_insecure_http: bool,
    /// Use ADDRESS for HOST, as curl's --resolve (HOST:PORT:ADDRESS; the port is ignored). The
    /// address is checked as a resolved one is.
    #[arg(long, value_name = "HOST:PORT:ADDRESS")]
    resolve: Vec<String>,
    /// Give up connecting to a server after SECS seconds (fractions allowed) [default:
    /// connect_timeout_secs, PLANNT_CONNECT_TIMEOUT_SECS, or 10].
    #[arg(long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    connect_timeout: Option<Duration>,
    /// Give up on the whole request after SECS seconds: the exchanges with the server, the
    /// payment and the answer [default: max_time_secs, PLANNT_MAX_TIME_SECS, or 120]. A payment
    /// in flight when it runs out stays pending, and the next run finishes it.
    #[arg(short = 'm', long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    max_time: Option<Duration>,
    /// Pay at most this many sats for this request (lowers the configured cap, never raises it).
    #[arg(long)]
    max_sats: Option<u64>,
    /// Pay only in these dialects, in this order of preference (comma-separated: l402, mpp,
    /// x402). It narrows the dialects setting, never widens it: a dialect the setting leaves out
    /// is never paid [default: pay_dialects, PLANNT_PAY_DIALECTS, or l402,mpp,x402].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    dialect: Vec<Dialect>,
    /// Show the price after every check a payment would pass, the budgets included; pay and
    /// reserve nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON summary (status, paid sats, fee, payment hash, preimage, time) to stdout.
    #[arg(long)]
    json: bool,
    /// Show each step on stderr: request, 402 with the dialect paid, invoice and macaroon,
    /// payment, retry, answer.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// The wallet, as a backend URI [default: the config file, PLANNT_WALLET, or dev+http://127.0.0.1:8402].
    #[arg(long)]
    wallet: Option<String>,
}

/// `HOST:PORT:ADDRESS` (the address may be in brackets) as curl's `--resolve` takes it.
pub(crate) fn parse_resolve(text: &str) -> Result<(String, Vec<std::net::IpAddr>), Error> {
    let bad = || Error::Usage(format!("--resolve {text:?}: expected HOST:PORT:ADDRESS"));
    let (host, rest) = text.split_once(':').ok_or_else(bad)?;
    let (_port, address) = rest.split_once(':').ok_or_else(bad)?;
    let addresses = address
        .split(',')
        .map(|a| a.trim_start_matches('[').trim_end_matches(']').parse())
        .collect::<Result<Vec<std::net::IpAddr>, _>>()
        .map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), addresses))
}

fn read_body(data: &Option<String>) -> Result<Vec<u8>, Error> {
    match data.as_deref() {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| Error::failed("cannot read standard input", e))?;
            Ok(body)
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                std::fs::read(path).map_err(|e| Error::failed(format!("cannot read {path}"), e))
            }
            None => Ok(text.as_bytes().to_vec()),
        },
    }
}

/// The URL, read as curl reads one, but for the scheme it adds to `host[:port][/path]`:
/// `http://` for a loopback host (`localhost`, 127.0.0.0/8, `::1`), `https://` for any other,
/// since a challenge that came over plain http is paid only from loopback.
fn parse_url(text: &str) -> Result<url::Url, Error> {
    let not_a_url = |e: url::ParseError| Error::Usage(format!("{text:?} is not a URL: {e}"));
    let with_scheme;
    let full = if text.contains("://") {
        text
    } else {
        let probe: url::Url = format!("http://{text}").parse().map_err(not_a_url)?;
        let loopback = match probe.host() {
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        with_scheme = format!("{}://{text}", if loopback { "http" } else { "https" });
        &with_scheme
    };
    let url: url::Url = full.parse().map_err(not_a_url)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Usage(format!(
            "{text:?}: only http:// and https:// URLs"
        )));
    }
    Ok(url)
}

/// The request a command line describes: the URL, `-X` (else `default_method`, or POST for a
/// GET with `-d`), each `-H "Name: value"`, and `-d` as a form body unless a Content-Type is given.
/// `plannt get`, `post`, `request` and `check` read their arguments the same way.
pub(crate) fn build_request(
    url: &str,
    method: Option<&str>,
    headers: &[String],
    data: &Option<String>,
    default_method: &str,
) -> Result<Request, Error> {
    let url = parse_url(url)?;
    let body = read_body(data)?;
    let method = match method {
        Some(m) => m.to_ascii_uppercase(),
        None if data.is_some() && default_method == "GET" => "POST".into(),
        None => default_method.into(),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| Error::Usage(format!("{method:?} is not an HTTP method")))?;
    let mut map = reqwest::header::HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| Error::Usage(format!("header {h:?} must be \"Name: value\"")))?;
        let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Error::Usage(format!("bad header name in {h:?}")))?;
        let value = reqwest::header::HeaderValue::from_str(value.trim())
            .map_err(|_| Error::Usage(format!("bad header value in {h:?}")))?;
        map.append(name, value);
    }
    if data.is_some() && !map.contains_key(reqwest::header::CONTENT_TYPE) {
        map.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    Ok(Request {
        method,
        url,
        headers: map,
        body: body.into(),
    })
}

/// What the progress line says while a payment is in flight: `paying 21 sats to host…`.
fn paying(amount_sats: u64, host: &str) -> String {
    format!("paying {} to {host}…", sats(amount_sats))
}

/// A progress line on stderr while a payment is in flight (a spinner, then the line cleared),
/// on a terminal only and not with `-s`.
struct Spinner {
    running: Arc<AtomicBool>,
}

impl Spinner {
    fn start(message: String) -> Spinner {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        std::thread::spawn(move || {
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let mut i = 0;
            while flag.load(Ordering::Relaxed) {
                out::eprint(format_args!("\r{} {message}", frames[i % frames.len()]));
                i += 1;
                std::thread::sleep(Duration::from_millis(80));
            }
            out::eprint(format_args!("\r\x1b[2K"));
        });
        Spinner { running }
    }

    fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Sends the request, paying if asked; the exit status of an answer (0, or 6 for an HTTP
/// error), or the error.
pub async fn run(args: &Args, default_method: &str) -> Result<ExitCode, Error> {
    let request = build_request(
        &args.url,
        args.method.as_deref(),
        &args.headers,
        &args.data,
        default_method,
    )?;
    let settings = setup::settings()?;
    // A person typed this URL: private addresses are theirs to reach unless they say otherwise.
    let mut policy = settings.policy_for(true);
    policy.allow_private_networks &= !args.no_private_networks;
    policy.allow_insecure_http |= args.allow_insecure_http;
    let pins = args
        .resolve
        .iter()
        .map(|r| parse_resolve(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut timeouts = settings.timeouts;
    timeouts.connect = args.connect_timeout.unwrap_or(timeouts.connect);
    timeouts.max_time = args.max_time.unwrap_or(timeouts.max_time);
    let client = setup::open_client(
        &settings,
        Setup {
            wallet: args.wallet.as_deref(),
            policy,
            redirects: if args.location { 10 } else { 0 },
            pins,
            timeouts,
        },
    )
    .await?;
    let started = Instant::now();
    let verbose = args.verbose && !args.silent;
    let spinner_ok = std::io::stderr().is_terminal() && !args.silent;
    let spinner: std::sync::Mutex<Option<Spinner>> = std::sync::Mutex::new(None);
    let stop_spinner = || {
        if let Some(s) = spinner.lock().expect("spinner lock").take() {
            s.stop();
            std::thread::sleep(Duration::from_millis(90));
        }
    };
    // The host of the last request sent: the one that asked for the payment.
    let host = std::sync::Mutex::new(String::new());
    // The dialect of the offer chosen: how the paid retry presents its credential.
    let chosen = std::sync::Mutex::new(Dialect::L402);
    let on_event = |event: &Event<'_>| {
        match event {
            Event::Request { url, .. } => {
                *host.lock().expect("host lock") = url.host_str().unwrap_or_default().to_string();
            }
            Event::Paying { amount_sats } if spinner_ok => {
                let host = host.lock().expect("host lock").clone();
                *spinner.lock().expect("spinner lock") =
                    Some(Spinner::start(paying(*amount_sats, &host)));
            }
            Event::Paid { .. } | Event::Response { .. } => stop_spinner(),
            Event::Challenge { dialect, .. } => *chosen.lock().expect("dialect lock") = *dialect,
            _ => {}
        }
        if !verbose {
            return;
        }
        match event {
            Event::Request {
                method,
                url,
                credential,
            } => {
                let auth = match (*credential, *chosen.lock().expect("dialect lock")) {
                    (false, _) => "Authorization: (none)",
                    (true, Dialect::L402) => "Authorization: L402 <macaroon>:<preimage>",
                    (true, Dialect::Mpp) => {
                        "Authorization: Payment <the challenge echoed, with the preimage>"
                    }
                    (true, Dialect::X402) => {
                        "PAYMENT-SIGNATURE: <the offer echoed, with the invoice paid>"
                    }
                };
                errln!("> {method} {url}\n>   {auth}");
            }
            Event::Challenge {
                dialect,
                invoice,
                macaroon,
                amount_sats,
            } => {
                // The status line was printed with the response.
                errln!(
                    "<   dialect:  {dialect}\n<   price:    {}\n<   invoice:  {invoice}",
                    sats(*amount_sats)
                );
                if !macaroon.is_empty() {
                    errln!("<   macaroon: {macaroon}");
                }
            }
            Event::Paying { amount_sats } => {
                errln!(
                    "* paying {} over Lightning ({})",
                    sats(*amount_sats),
                    chosen.lock().expect("dialect lock")
                )
            }
            Event::Paid { preimage, fee_msat } => errln!(
                "* paid: preimage {preimage} (fee {fee_msat} msat)\n* retrying with the credential"
            ),
            Event::Response { status, l402 } => match l402 {
                Some(v) => errln!("< {status} (x-l402: {v})"),
                None => errln!("< {status}"),
            },
        }
    };
    let options = Options {
        max_sats: args.max_sats,
        dry_run: args.dry_run,
        on_event: Some(&on_event),
        dialects: (!args.dialect.is_empty()).then_some(args.dialect.as_slice()),
        max_session_sats: None,
    };
    let outcome = client.send(&request, &options).await;
    stop_spinner();
    let outcome = outcome?;
    let response = match outcome {
        Outcome::DryRun(quote) => {
            let summary = json!({
                "dry_run": true,
                "dialect": quote.dialect.as_str(),
                "price_sats": quote.amount_sats(),
                "network": quote.invoice.network.as_str(),
                "payment_hash": hex::encode(quote.invoice.payment_hash),
                "payee": hex::encode(quote.invoice.payee),
                "invoice_expires_at": quote.invoice.expires_at(),
                "checks_passed": plannt_client::CHECKS,
                "would_reserve_sats": quote.amount_sats() + client.policy().max_fee_sats,
            });
            if args.json {
                outln!("{summary}")?;
            } else if !args.silent {
                errln!(
                    "dry run: {} costs {} in {} (invoice on {}, payment hash {}); every check passed, the budgets included (paying reserves {}: the price plus the fee reserve); nothing was paid or reserved",
                    request.url,
                    sats(quote.amount_sats()),
                    quote.dialect,
                    quote.invoice.network,
                    hex::encode(quote.invoice.payment_hash),
                    sats(quote.amount_sats() + client.policy().max_fee_sats)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Outcome::Response(response) => response,
    };
    let output = Output {
        include: args.include,
        output: args.output.clone(),
        silent: args.silent,
        json: args.json,
    };
    print_answer(response, &output, started).await
}

/// Where and how an answer is printed: `-i`, `-o FILE`, `-s`, `--json`.
pub(crate) struct Output {
    /// Print the status line and headers before the body.
    pub(crate) include: bool,
    /// Write the body to this file instead of standard output.
    pub(crate) output: Option<PathBuf>,
    /// No notes on stderr.
    pub(crate) silent: bool,
    /// A JSON summary on stdout.
    pub(crate) json: bool,
}

/// Prints an answer as `plannt get` does (the body, or a JSON summary; the receipt on stderr);
/// the exit status (0, or 6 for an HTTP error).
pub(crate) async fn print_answer(
    mut response: plannt_client::Response,
    args: &Output,
    started: Instant,
) -> Result<ExitCode, Error> {
    let status = response.status;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| Error::failed(format!("cannot write {}", path.display()), e))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    // A reader of standard output gone (`| head`) is Error::Closed: the command ends quietly.
    let write_err = |e: std::io::Error| out::write_failed("cannot write the body", e);
    if args.json {
        let body = response.bytes(64 * 1024 * 1024).await?;
        let receipt = response.receipt.clone();
        let mut summary = json!({
            "status": status.as_u16(),
            "paid_sats": receipt.as_ref().map_or(0, |r| r.amount_sats),
            "dialect": receipt.as_ref().map(|r| r.dialect.as_str()),
            "fee_msat": receipt.as_ref().map_or(0, |r| r.fee_msat),
            "payment_hash": receipt.as_ref().map(|r| r.payment_hash.clone()),
            "preimage": receipt.as_ref().map(|r| r.preimage.clone()),
            "reused_token": receipt.as_ref().is_some_and(|r| r.reused_token),
            "recovered": receipt.as_ref().is_some_and(|r| r.recovered),
            "session": receipt.as_ref().and_then(|r| r.session.as_deref()),
            "need_top_up": response.need_top_up,
            "time_ms": started.elapsed().as_millis() as u64,
            "content_type": response.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        });
        match &args.output {
            Some(_) => out.write_all(&body).map_err(write_err)?,
            None => match std::str::from_utf8(&body) {
                Ok(text) => summary["body"] = json!(text),
                Err(_) => {
                    summary["body_base64"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(&body))
                }
            },
        }
        outln!("{summary}")?;
    } else {
        // The body, or why it stopped: the receipt is told either way, once paid.
        let written = async {
            if args.include {
                let mut head = format!("HTTP/1.1 {status}\r\n");
                for (name, value) in &response.headers {
                    head += &format!("{name}: {}\r\n", String::from_utf8_lossy(value.as_bytes()));
                }
                head += "\r\n";
                out::print_bytes(head.as_bytes())?;
            }
            while let Some(chunk) = response.chunk().await? {
                out.write_all(&chunk).map_err(write_err)?;
            }
            out.flush().map_err(write_err)
        }
        .await;
        if !args.silent
            && let Some(r) = &response.receipt
        {
            if let Some(session) = &r.session {
                let paid = match session.action.as_str() {
                    "open" => format!("opened it with a deposit of {}", sats(r.amount_sats)),
                    "topUp" => format!("topped it up with {}", sats(r.amount_sats)),
                    _ => "nothing paid now".to_string(),
                };
                errln!(
                    "plannt: paid from the prepaid session {} over mpp ({paid}); {} left (plannt session close {} refunds it)",
                    &session.id[..16],
                    sats(session.balance_sats),
                    &session.id[..16]
                );
            } else if r.reused_token && r.recovered {
                errln!(
                    "plannt: presented a token paid earlier over {} again for the same request (payment hash {}): its first answer was lost, and this is the answer, recovered; nothing more was paid",
                    r.dialect,
                    r.payment_hash
                );
            } else if r.reused_token {
                errln!(
                    "plannt: presented a token paid earlier over {} (payment hash {})",
                    r.dialect,
                    r.payment_hash
                );
            } else if r.recovered {
                errln!(
                    "plannt: paid {} over {} (fee {} msat), payment hash {}; the first answer was lost, and presenting the same credential again recovered it (nothing more was paid)",
                    sats(r.amount_sats),
                    r.dialect,
                    r.fee_msat,
                    r.payment_hash
                );
            } else {
                errln!(
                    "plannt: paid {} over {} (fee {} msat), payment hash {}",
                    sats(r.amount_sats),
                    r.dialect,
                    r.fee_msat,
                    r.payment_hash
                );
            }
        }
        if let Some(event) = &response.need_top_up
            && !args.silent
        {
            errln!(
                "plannt: the server stopped the stream: the prepaid session {} ran out ({} spent, {} more needed); the answer may be incomplete, and the next request tops the session up",
                &event.session_id[..16.min(event.session_id.len())],
                sats(event.balance_spent),
                sats(event.balance_required)
            );
        }
        written?;
    }
    if status.is_client_error() || status.is_server_error() {
        if !args.silent && !args.json {
            errln!("plannt: the server answered {status}");
        }
        return Ok(ExitCode::from(exit::HTTP_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{parse_resolve, parse_url, paying};

    #[test]
    fn a_url_without_a_scheme_gets_the_one_plannt_can_pay_over() {
        for (typed, url) in [
            ("localhost:8402/v1/demo", "http://localhost:8402/v1/demo"),
            ("LOCALHOST.:8402", "http://localhost.:8402/"),
            ("api.localhost/x", "http://api.localhost/x"),
            ("127.0.0.2:80/x", "http://127.0.0.2/x"),
            ("[::1]:8402/x", "http://[::1]:8402/x"),
            (
                "api.example.com/v1/x?q=1",
                "https://api.example.com/v1/x?q=1",
            ),
            ("10.0.0.1:8080", "https://10.0.0.1:8080/"),
            ("http://api.example.com/x", "http://api.example.com/x"),
            ("https://127.0.0.1/x", "https://127.0.0.1/x"),
        ] {
            assert_eq!(parse_url(typed).unwrap().as_str(), url, "{typed}");
        }
        for bad in [
            "",
            "ftp://example.com/x",
            "no such/host:x",
            "http://",
            "a:b:c",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(matches!(e, crate::error::Error::Usage(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn the_progress_line_names_the_price_and_the_host() {
        assert_eq!(
            paying(21, "api.example.com"),
            "paying 21 sats to api.example.com…"
        );
        assert_eq!(paying(1, "127.0.0.1"), "paying 1 sat to 127.0.0.1…");
    }

    #[test]
    fn resolve_takes_curls_form() {
        assert_eq!(
            parse_resolve("api.example:443:127.0.0.1").unwrap(),
            (
                "api.example".to_string(),
                vec!["127.0.0.1".parse().unwrap()]
            )
        );
        assert_eq!(
            parse_resolve("api.example:80:[::1],10.0.0.1").unwrap().1,
            [
                "::1".parse::<std::net::IpAddr>().unwrap(),
                "10.0.0.1".parse().unwrap()
            ]
        );
        for bad in [
            "api.example",
            "api.example:80",
            ":80:127.0.0.1",
            "a:80:not-an-ip",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }
}
