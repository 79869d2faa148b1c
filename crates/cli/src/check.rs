//! `plannt check URL`: a conformance probe of any 402 server (L402, MPP, x402). The checks are
//! `plannt_client::probe`'s; this prints them, as a table for people or JSON for programs, and
//! leaves an exit status a script can test. Nothing is paid without `--pay`: the probe's client
//! has no wallet at all.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use plannt_client::l402::Dialect;
use plannt_client::probe::{self, NeverPays, Report, RoutePricing, Verdict};
use plannt_client::{Client, WalletApi};

use crate::error::{Error, exit};
use crate::get::{build_request, parse_resolve};
use crate::out::{errln, outln};
use crate::setup::{self, Setup};

const AFTER_HELP: &str = "What is checked, without paying: the status (402); each challenge parses (L402, MPP's Payment Lightning charge, x402's PAYMENT-REQUIRED), with the parser's error if not; each invoice decodes and its signature verifies; what each challenge claims agrees with its invoice (L402: the macaroon's payment hash; MPP: amount, paymentHash, network, expires; x402: amount in msat, network, payTo, maxTimeoutSeconds, paymentHash); the invoice names an amount and has not expired; every offer names the same invoice (a warning if not: Plannt's promise, not every server's); the JSON body's fields agree; the L402 form (macaroon=, or version=\"0\" token=); and the catalog at /.well-known/l402.json on the same origin, if there is one, lists the route with the invoice's price (for a route metered by its tokens: the catalog's rule, and the price the 402's body gives this request by it, which must be the invoice's) and the dialects offered. Below the findings: how the route is priced (a fixed price, or the metered rule per 1k input/output tokens per model, its max_tokens ceiling and minimum, and this request's price), its free tier and rate limit per client address, and the prepaid session deposit if the 402 offers sessions.

With --pay: the request is paid as plannt get pays it (the budgets, the policy and the ledger of the paying side: see plannt get --help), the paid answer's status and receipts (x-l402, Payment-Receipt, PAYMENT-RESPONSE) are checked against the payment, and the same credential is presented once more, as it was sent, in the dialect paid (Authorization: L402 or Payment, PAYMENT-SIGNATURE): refused means single-use tokens, served means reusable ones; either is reported, neither fails.

Each finding is pass, warn or fail; the verdict is the worst. The table goes to standard output (colours on a terminal only, never with NO_COLOR); --json prints one object: {url, status, offers: [{dialect, invoice, payment_hash, amount_msat, network, expires_at}], findings: [{check, dialect, result, detail}], verdict, pricing: {model, amount_sats, per, rule, quote, free, rate_limit, session}, paid: null or {dialect, status, amount_sats, fee_msat, payment_hash, reused_token, replay_status, replay}} (docs/check.md).

Bounds: the connect timeout and the max time of plannt get, per request (--connect-timeout, --max-time); 64 KiB of a 402 body, 1 MiB of a catalog, 32 KiB per challenge header; no redirect is followed. Private addresses: a URL that names a loopback or private address itself (127.0.0.1, localhost, 10.0.0.1) is checked; a host name that resolves to one is refused (exit 4), unless allow_private_networks (PLANNT_ALLOW_PRIVATE_NETWORKS) says otherwise; --no-private-networks refuses both.

Exit status: 0 no check failed (warnings allowed); 8 at least one check failed; 4 the request was refused before it was sent (an address rule) or, with --pay, a check refused the payment; 3 over budget; 5 the payment failed; 7 the server could not be reached; 1 setup; 2 bad usage.";

/// `plannt check`'s arguments.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The URL of a paid resource. Without a scheme it is http:// for a loopback host and
    /// https:// for any other.
    url: String,
    /// The method [default: GET, or POST with -d].
    #[arg(short = 'X', long = "request")]
    method: Option<String>,
    /// A header, "Name: value". Repeat for more.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The body: text, @FILE, or - for standard input.
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// Pay the 402 (within the budgets and the policy, recorded in the ledger), check the paid
    /// answer and its receipts, and present the same credential again. Without it nothing is paid.
    #[arg(long)]
    pay: bool,
    /// A dialect the 402 must offer: l402, mpp or x402 (repeat for more; a missing one fails).
    /// With --pay, the first is the one paid through.
    #[arg(long = "dialect", value_name = "DIALECT")]
    dialects: Vec<Dialect>,
    /// Print one JSON object (docs/check.md) instead of the table.
    #[arg(long)]
    json: bool,
    /// With --pay: pay at most this many sats (lowers the configured cap, never raises it).
    #[arg(long)]
    max_sats: Option<u64>,
    /// With --pay: the wallet, as a backend URI [default: the config file, PLANNT_WALLET, or
    /// dev+http://127.0.0.1:8402].
    #[arg(long)]
    wallet: Option<String>,
    /// With --pay: pay a challenge that came over plain http from a host that is not loopback.
    #[arg(long)]
    allow_insecure_http: bool,
    /// Refuse loopback, private and link-local addresses, even when the URL names one.
    #[arg(long)]
    no_private_networks: bool,
    /// Use ADDRESS for HOST, as curl's --resolve (HOST:PORT:ADDRESS; the port is ignored).
    #[arg(long, value_name = "HOST:PORT:ADDRESS")]
    resolve: Vec<String>,
    /// Give up connecting after SECS seconds [default: connect_timeout_secs, or 10].
    #[arg(long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    connect_timeout: Option<Duration>,
    /// Give up on each request after SECS seconds [default: max_time_secs, or 120].
    #[arg(short = 'm', long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    max_time: Option<Duration>,
}

/// Whether the URL names a loopback or private place itself: an IP literal, or `localhost`.
fn names_an_address(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

/// Runs the probe, prints the report; the exit status: 0, or 8 when a check failed.
pub async fn run(args: &Args) -> Result<ExitCode, Error> {
    // `-d` without `-X` is a POST, as for `plannt get`.
    let request = build_request(
        &args.url,
        args.method.as_deref(),
        &args.headers,
        &args.data,
        "GET",
    )?;
    let settings = setup::settings()?;
    let mut policy = settings.policy_for(names_an_address(&request.url));
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
    // Kept until the end: the unpaid client's ledger lives in it.
    let scratch;
    let client = if args.pay {
        setup::open_client(
            &settings,
            Setup {
                wallet: args.wallet.as_deref(),
                policy,
                redirects: 0,
                pins,
                timeouts,
            },
        )
        .await?
    } else {
        // No wallet: this client cannot pay. Its ledger is a scratch one (a refusal is recorded
        // there, not in the user's), and the wallet's API stays out of reach all the same.
        scratch =
            tempfile::tempdir().map_err(|e| Error::failed("cannot make a scratch directory", e))?;
        let ledger = plannt_client::Ledger::open(&scratch.path().join("ledger.sqlite"))?;
        let wallet_api = setup::wallet_uri(args.wallet.as_deref(), &settings)
            .map(|uri| WalletApi::of(&uri))
            .unwrap_or_else(|_| WalletApi::none());
        let mut builder = Client::builder(Arc::new(NeverPays), ledger, policy)
            .wallet_api(wallet_api)
            .timeouts(timeouts);
        for (host, addresses) in &pins {
            builder = builder.resolve(host, addresses);
        }
        builder.build()
    };
    let mut report = probe::probe(&client, &request, &args.dialects).await?;
    if args.pay {
        if report.status != 402 {
            errln!("plannt: the server did not ask for a payment: nothing to pay");
        } else if let Err(e) = probe::pay(
            &client,
            &request,
            &mut report,
            args.dialects.first().copied(),
            args.max_sats,
        )
        .await
        {
            // What was found before paying is still worth reading; then the payment's error.
            print(&report, args.json)?;
            return Err(e.into());
        }
    }
    print(&report, args.json)?;
    Ok(if report.verdict == Verdict::Fail {
        ExitCode::from(exit::CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(report: &Report, json: bool) -> Result<(), Error> {
    if json {
        let text = serde_json::to_string(report).map_err(Error::other)?;
        return outln!("{text}");
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    outln!("{}", table(report, colour))
}

/// The report as a table: one line a finding, columns aligned, then the payment and the verdict.
pub fn table(report: &Report, colour: bool) -> String {
    let dialects: Vec<&str> = report.dialects().iter().map(Dialect::as_str).collect();
    let offers = if dialects.is_empty() {
        "no offers".to_string()
    } else {
        format!("offers {}", dialects.join(", "))
    };
    let mut out = format!("{}  {}  {offers}\n\n", report.url, report.status);
    let rows: Vec<[&str; 4]> = report
        .findings
        .iter()
        .map(|f| {
            [
                f.result.as_str(),
                f.dialect.as_ref().map_or("-", Dialect::as_str),
                f.check,
                f.detail.as_str(),
            ]
        })
        .collect();
    let header = ["RESULT", "DIALECT", "CHECK", "DETAIL"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    out += &format!(
        "{:w0$}  {:w1$}  {:w2$}  {}\n",
        header[0], header[1], header[2], header[3]
    );
    for (row, finding) in rows.iter().zip(&report.findings) {
        let result = format!("{:w0$}", row[0]);
        out += &format!(
            "{}  {:w1$}  {:w2$}  {}\n",
            paint(&result, finding.result, colour),
            row[1],
            row[2],
            row[3]
        );
    }
    let pricing = pricing_lines(&report.pricing);
    if !pricing.is_empty() {
        out.push('\n');
        for line in pricing {
            out += &line;
            out.push('\n');
        }
    }
    if let Some(paid) = &report.paid {
        let replay = match (paid.replay, paid.replay_status) {
            (Some(what), Some(code)) => format!("; replay {code} ({what})"),
            _ => String::new(),
        };
        out += &format!(
            "\npaid: {} sats through {} (fee {} msat), payment hash {}; answer {}{replay}\n",
            paid.amount_sats, paid.dialect, paid.fee_msat, paid.payment_hash, paid.status
        );
    }
    let count = |v: Verdict| report.findings.iter().filter(|f| f.result == v).count();
    out += &format!(
        "\nverdict: {} ({} pass, {} warn, {} fail)",
        paint(report.verdict.as_str(), report.verdict, colour),
        count(Verdict::Pass),
        count(Verdict::Warn),
        count(Verdict::Fail)
    );
    out
}

/// How the route is priced, a line each: the price (fixed, or the rule and this request's
/// price by it), the free tier, the rate limit, the sessions offered.
fn pricing_lines(pricing: &RoutePricing) -> Vec<String> {
    let mut lines = Vec::new();
    match (&pricing.rule, pricing.model.as_deref(), pricing.amount_sats) {
        (Some(rule), _, _) => {
            lines.push(format!("price:    metered, {rule}"));
            if let Some(q) = &pricing.quote {
                lines.push(format!(
                    "          this request: {} sats ({}, {} input tokens, {} output tokens at most)",
                    q.sats, q.model, q.input_tokens, q.output_tokens
                ));
            }
        }
        (None, Some("free"), _) => lines.push("price:    free".into()),
        (None, _, Some(sats)) => lines.push(format!(
            "price:    {sats} sats per {}",
            pricing.per.as_deref().unwrap_or("request")
        )),
        (None, _, None) => {}
    }
    if let Some(free) = &pricing.free {
        lines.push(format!("free:     {free}, before any payment"));
    }
    if let Some(limit) = &pricing.rate_limit {
        lines.push(format!("limit:    {limit}, paid or not"));
    }
    if let Some(session) = &pricing.session {
        lines.push(format!("session:  {session}"));
    }
    lines
}

fn paint(text: &str, verdict: Verdict, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let code = match verdict {
        Verdict::Pass => "32",
        Verdict::Warn => "33",
        Verdict::Fail => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
