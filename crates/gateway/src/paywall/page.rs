//! The payment page: the 402 of a browser's navigation, as HTML.
//!
//! A `GET` whose `Accept` prefers `text/html` over anything an agent reads (`application/json`,
//! `*/*`) gets the same 402 as an agent, status and headers unchanged (`WWW-Authenticate`,
//! `PAYMENT-REQUIRED`, `Cache-Control`), with an HTML body instead of the JSON one: the route's
//! description and price, the invoice as a QR code (SVG made here), a `lightning:` link, a copy
//! button and the expiry. Its script asks `GET /_plannt/pay/<payment hash>` (with the macaroon of
//! the 402, `paywall/poll.rs`) whether the invoice is paid; once it is, that answer sets the
//! credential in an `HttpOnly; SameSite=Strict` cookie named for the route, and the page loads
//! the resource again: the paywall reads that cookie as it reads an `Authorization: L402`
//! value (same verification, same single use, same kept answer).
//!
//! The page loads nothing from elsewhere: its script and style are embedded in the binary and
//! allowed by their SHA-256 in a `Content-Security-Policy` that allows nothing else.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use plannt_l402::Credential;
use qrcode::{Color, EcLevel, QrCode};
use sha2::{Digest, Sha256};

/// Where the page asks whether its invoice is paid: `/_plannt/pay/<payment hash hex>`.
pub(crate) const PAY_PREFIX: &str = "/_plannt/pay/";
/// The header the page presents the 402's macaroon in when it asks.
pub(crate) const MACAROON_HEADER: HeaderName = HeaderName::from_static("plannt-macaroon");
/// The prefix of the cookies that carry a credential, one per route: `plannt-<route id>`.
pub(crate) const COOKIE_PREFIX: &str = "plannt-";

const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

/// The page's policy: its own script and style by hash, requests to its own origin, nothing
/// else (no other script, style, image, frame, form target or base).
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
         img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_base64(SCRIPT),
        sha256_base64(STYLE)
    );
    HeaderValue::from_str(&policy).expect("the policy is plain text")
});

fn sha256_base64(text: &str) -> String {
    plannt_l402::base64_encode(&Sha256::digest(text.as_bytes()))
}

/// What the page of one 402 shows, put on the 402 by the challenge (as a response extension)
/// and read when the request asked for HTML. No `Debug`: it holds the macaroon.
#[derive(Clone)]
pub(super) struct PageFacts {
    /// The route's description, or empty.
    pub(super) description: String,
    /// The request's method and path, as the page names the resource.
    pub(super) resource: String,
    /// The price in sats.
    pub(super) amount_sats: u64,
    /// The BOLT11 invoice.
    pub(super) invoice: String,
    /// Its payment hash, hex.
    pub(super) payment_hash: String,
    /// When it expires, unix seconds.
    pub(super) expires_at: u64,
    /// The macaroon of the L402 challenge, base64: what the page presents when it asks.
    pub(super) macaroon: String,
    /// Why a credential presented was refused (spent, expired…), if one was.
    pub(super) reason: Option<String>,
}

/// Whether a request is a browser's navigation that should get the page: a `GET` whose
/// `Accept` ranks `text/html` (or XHTML) above every type an agent reads (`application/json`,
/// `application/problem+json`, `application/*`, `*/*`). A tie goes to the agent: `Accept:
/// application/json, text/html` gets today's JSON.
pub(super) fn prefers_html(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET {
        return false;
    }
    let (mut html, mut agent) = (0.0f32, 0.0f32);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for item in text.split(',') {
            let mut params = item.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("q").then_some(value)
                })
                .next()
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .filter(|q| q.is_finite())
                .unwrap_or(0.0)
                .clamp(0.0, 1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html = html.max(q),
                "application/json" | "application/problem+json" | "application/*" | "*/*" => {
                    agent = agent.max(q);
                }
                _ => {}
            }
        }
    }
    html > 0.0 && html > agent
}

/// The 402 with the page as its body, when the paywall made it with [`PageFacts`]; any other
/// answer (an upstream's own 402, a 429, a 503) as it is. Status and headers stay as they are
/// for an agent; the body's type, the policy and `Vary: Accept` are the page's own.
pub(super) fn render(response: Response) -> Response {
    let Some(facts) = response.extensions().get::<PageFacts>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<PageFacts>();
    let headers = &mut parts.headers;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.append(header::VARY, HeaderValue::from_static("accept"));
    Response::from_parts(parts, Body::from(html(&facts)))
}

/// The page itself.
fn html(facts: &PageFacts) -> String {
    let expires = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(facts.expires_at.min(253_402_300_799));
    let expires = humantime::format_rfc3339_seconds(expires).to_string();
    let title = if facts.description.is_empty() {
        facts.resource.clone()
    } else {
        facts.description.clone()
    };
    let reason = facts.reason.as_deref().map_or(String::new(), |why| {
        format!(
            "<p class=\"reason\" id=\"plannt-reason\">{}</p>\n",
            escape(why)
        )
    });
    let sats = if facts.amount_sats == 1 {
        "sat"
    } else {
        "sats"
    };
    let qr = qr_svg(&facts.invoice).unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"referrer\" content=\"no-referrer\">\n\
<title>Payment required: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
<main id=\"plannt-pay\" data-payment-hash=\"{hash}\" data-macaroon=\"{macaroon}\" data-invoice=\"{invoice}\" data-expires=\"{expires_at}\">\n\
<h1 id=\"plannt-description\">{title}</h1>\n\
<p class=\"resource\" id=\"plannt-resource\">Payment required for {resource}</p>\n\
{reason}\
<p class=\"price\" id=\"plannt-price\" data-sats=\"{amount}\">{amount} {sats}</p>\n\
{qr}\n\
<div class=\"actions\"><a id=\"plannt-open\" href=\"lightning:{invoice}\">Open in wallet</a>\
<button id=\"plannt-copy\" type=\"button\">Copy invoice</button></div>\n\
<p class=\"invoice\" id=\"plannt-invoice\">{invoice}</p>\n\
<p class=\"small\">Pay with any Lightning wallet before <time id=\"plannt-expiry\" datetime=\"{expires}\">{expires}</time>. \
This page loads what you paid for once the payment arrives.</p>\n\
<p class=\"status\" id=\"plannt-status\" role=\"status\" aria-live=\"polite\">Waiting for the payment…</p>\n\
<noscript><p class=\"small\">Without JavaScript this page cannot tell when the invoice is paid: \
pay it, then present the credential with <code>Authorization: L402 &lt;macaroon&gt;:&lt;preimage&gt;</code>.</p></noscript>\n\
</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        title = escape(&title),
        hash = escape(&facts.payment_hash),
        macaroon = escape(&facts.macaroon),
        invoice = escape(&facts.invoice),
        expires_at = facts.expires_at,
        resource = escape(&facts.resource),
        amount = facts.amount_sats,
    )
}

/// The invoice as a QR code in SVG: `LIGHTNING:<INVOICE>` in capitals (the alphanumeric mode,
/// the smallest code), one path of dark modules inside a four-module quiet zone.
pub(super) fn qr_svg(invoice: &str) -> Option<String> {
    let data = format!("LIGHTNING:{}", invoice.to_ascii_uppercase());
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    const QUIET: usize = 4;
    let size = width + 2 * QUIET;
    let mut path = String::new();
    for y in 0..width {
        let row = &colors[y * width..(y + 1) * width];
        let mut x = 0;
        while x < width {
            if row[x] != Color::Dark {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && row[x] == Color::Dark {
                x += 1;
            }
            let run = x - start;
            let _ = write!(path, "M{},{}h{run}v1h-{run}z", start + QUIET, y + QUIET);
        }
    }
    Some(format!(
        "<svg class=\"qr\" id=\"plannt-qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code of the Lightning invoice\">\
<rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

/// Text made safe for HTML content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The cookie that carries the credential for `route`.
pub(super) fn cookie_name(route: &str) -> String {
    format!("{COOKIE_PREFIX}{route}")
}

/// The L402 credential in the request's cookie for `route`, if it has one that reads as a
/// credential (`<macaroon>:<preimage>`). Another route's cookie is not read.
pub(super) fn cookie_credential(headers: &HeaderMap, route: &str) -> Option<Credential> {
    let name = cookie_name(route);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, value)| Credential::parse(&format!("L402 {}", value.trim())).ok())
}

/// Removes every credential cookie (`plannt-*`) from the request: an upstream never sees one.
/// Other cookies are the upstream's and stay.
pub(super) fn strip_cookies(headers: &mut HeaderMap) {
    let ours = |pair: &str| pair.trim_start().starts_with(COOKIE_PREFIX);
    let values: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !values.iter().any(|v| v.split(';').any(ours)) {
        return;
    }
    let kept: Vec<String> = values
        .iter()
        .map(|v| {
            v.split(';')
                .filter(|pair| !ours(pair) && !pair.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(header::COOKIE);
    for value in kept {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.append(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_a_browsers_navigation_prefers_html() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        for value in [chrome, firefox, "text/html", "text/html;q=0.5, */*;q=0.1"] {
            assert!(prefers_html(&Method::GET, &accept(value)), "{value}");
        }
        for value in [
            "*/*",
            "application/json",
            "application/json, text/html",
            "text/html;q=0.5, application/json",
            "text/html;q=0",
            "text/html;q=nonsense",
            "application/problem+json, text/html;q=0.9",
            "image/png",
        ] {
            assert!(!prefers_html(&Method::GET, &accept(value)), "{value}");
        }
        assert!(!prefers_html(&Method::GET, &HeaderMap::new()), "no Accept");
        assert!(!prefers_html(&Method::POST, &accept(firefox)), "only GET");
        assert!(!prefers_html(&Method::HEAD, &accept(firefox)), "only GET");
    }

    fn facts() -> PageFacts {
        PageFacts {
            description: "Search <the> \"web\" & more".into(),
            resource: "GET /v1/search".into(),
            amount_sats: 21,
            invoice: "lnbcrt210n1pexample".into(),
            payment_hash: "ab".repeat(32),
            expires_at: 1_800_000_000,
            macaroon: "AgEEbHNhdA==".into(),
            reason: None,
        }
    }

    #[test]
    fn the_page_shows_the_price_the_invoice_and_escapes_the_description() {
        let page = html(&facts());
        assert!(page.contains("Search &lt;the&gt; &quot;web&quot; &amp; more"));
        assert!(!page.contains("<the>"));
        assert!(page.contains(">21 sats</p>"));
        assert!(page.contains("href=\"lightning:lnbcrt210n1pexample\""));
        assert!(page.contains("id=\"plannt-invoice\">lnbcrt210n1pexample</p>"));
        assert!(page.contains("2027-01-15T08:00:00Z"), "the expiry, in UTC");
        assert!(page.contains("<svg class=\"qr\""));
    }

    #[test]
    fn the_policy_allows_exactly_the_embedded_script_and_style() {
        let page = html(&facts());
        let csp = CSP.to_str().unwrap();
        let between = |open: &str, close: &str| {
            let start = page.find(open).unwrap() + open.len();
            let end = start + page[start..].find(close).unwrap();
            page[start..end].to_string()
        };
        let script = between("<script>", "</script>");
        let style = between("<style>", "</style>");
        assert!(csp.contains(&format!("script-src 'sha256-{}'", sha256_base64(&script))));
        assert!(csp.contains(&format!("style-src 'sha256-{}'", sha256_base64(&style))));
        assert!(csp.starts_with("default-src 'none'"));
        assert_eq!(page.matches("<script").count(), 1, "one script, inline");
        for refused in ["unsafe-inline", "unsafe-eval", "http:", "https:", "*"] {
            assert!(!csp.contains(refused), "{refused} in {csp}");
        }
        for loaded in [" src=", "<link", " style=", " onclick=", "@import", "url("] {
            assert!(!page.contains(loaded), "the page loads or inlines {loaded}");
        }
    }

    #[test]
    fn the_qr_code_has_every_dark_module_of_the_invoice() {
        let invoice = "lnbcrt210n1p5example0000000000000000000000000000000000000000000";
        let svg = qr_svg(invoice).unwrap();
        let code = QrCode::with_error_correction_level(
            format!("LIGHTNING:{}", invoice.to_ascii_uppercase()).as_bytes(),
            EcLevel::M,
        )
        .unwrap();
        let dark = code
            .to_colors()
            .iter()
            .filter(|c| **c == Color::Dark)
            .count();
        let runs: usize = svg
            .split('h')
            .skip(1)
            .filter_map(|s| s.split('v').next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(runs, dark);
        let size = code.width() + 8;
        assert!(svg.contains(&format!("viewBox=\"0 0 {size} {size}\"")));
    }

    #[test]
    fn a_cookie_is_read_for_its_own_route_and_never_passed_on() {
        let credential = format!("{}:{}", "AgEEbHNhdA", "00".repeat(32));
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; plannt-a={credential}")).unwrap(),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_str("plannt-b=x:y; session=1").unwrap(),
        );
        assert!(cookie_credential(&headers, "b").is_none(), "unreadable");
        assert!(cookie_credential(&headers, "c").is_none(), "none for c");
        strip_cookies(&mut headers);
        let left: Vec<&str> = headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["theme=dark", "session=1"]);
    }
}
