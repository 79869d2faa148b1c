//! `BackendUri::from_str` on arbitrary text (the input, read as lossy UTF-8): the `--wallet` and
//! `PLANNT_WALLET` value, which carries an API key, a rune, a password, a macaroon or a Nostr
//! secret key.
//!
//! Checks that it never panics, and that no secret of at least 8 characters shows: neither in
//! the parsed URI's `Display` nor its `Debug`, nor in the error's `Display` or `Debug` when the
//! URI is refused. The secrets are the values of the `key`, `rune`, `password` and `secret`
//! parameters, and of `macaroon` when it is hex (an even number, at least 32, of hex digits:
//! shorter or other values name a file, which is printed). Each is looked for as written in the
//! input, percent-decoded, and, when the URI parses, as the parser kept it.
//!
//! A secret counts as shown only when the text depends on it: the same input with every letter
//! and digit of those values changed (digit to digit, hex letter to hex letter, so that it stays
//! as valid as it was) must print differently. That leaves out a secret that is also written
//! elsewhere in the input (as the host, say) or is a word of the output itself (`<redacted>`).
#![no_main]

use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use plannt_lightning::BackendUri;
use plannt_lightning::uri::MacaroonSource;

/// The parameters whose value is a secret.
const SECRET_PARAMETERS: [&str; 5] = ["key", "rune", "password", "secret", "macaroon"];

/// Shorter values are not looked for: they could show by chance.
const MIN_SECRET_CHARS: usize = 8;

/// The parser's rule for a macaroon given inline rather than as a file.
fn is_hex_macaroon(value: &str) -> bool {
    value.len().is_multiple_of(2)
        && value.len() >= 32
        && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `application/x-www-form-urlencoded` decoding, as `Url::query_pairs` does it, after dropping
/// the tabs and newlines that `Url::parse` drops.
fn form_decode(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    url::form_urlencoded::parse(format!("x={cleaned}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The secret parameters of `text`, found without a URL parser (so also in text that is no
/// URL): the query is what follows the first `?` before any `#`, split on `&`. Returns the byte
/// range of each value in `text` and the value's forms to look for.
fn secret_values(text: &str) -> Vec<(Range<usize>, Vec<String>)> {
    let trimmed = text.trim();
    let start = trimmed.as_ptr() as usize - text.as_ptr() as usize;
    let before_fragment = trimmed.split('#').next().unwrap_or_default();
    let Some(question) = before_fragment.find('?') else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut offset = start + question + 1;
    for pair in before_fragment[question + 1..].split('&') {
        if let Some(equals) = pair.find('=') {
            let name = form_decode(&pair[..equals]);
            let raw = &pair[equals + 1..];
            if SECRET_PARAMETERS.contains(&name.as_str()) {
                let decoded = form_decode(raw);
                let mut forms = Vec::new();
                if name != "macaroon" || is_hex_macaroon(&decoded) || is_hex_macaroon(raw) {
                    forms.push(raw.to_string());
                    forms.push(decoded);
                }
                let value_start = offset + equals + 1;
                found.push((value_start..value_start + raw.len(), forms));
            }
        }
        offset += pair.len() + 1;
    }
    found
}

/// Changes every ASCII letter and digit in `ranges` of `text` to another of the same kind
/// (`0-9`, `a-f`, `A-F`, `g-z`, `G-Z`), leaving `%XX` escapes and everything else as it is.
fn change_secrets(text: &str, ranges: &[Range<usize>]) -> String {
    fn next_in(c: u8, first: u8, last: u8) -> u8 {
        if c == last { first } else { c + 1 }
    }
    let mut bytes = text.as_bytes().to_vec();
    for range in ranges {
        let mut i = range.start;
        while i < range.end {
            let c = bytes[i];
            if c == b'%' {
                i += 3;
                continue;
            }
            bytes[i] = match c {
                b'0'..=b'9' => next_in(c, b'0', b'9'),
                b'a'..=b'f' => next_in(c, b'a', b'f'),
                b'A'..=b'F' => next_in(c, b'A', b'F'),
                b'g'..=b'z' => next_in(c, b'g', b'z'),
                b'G'..=b'Z' => next_in(c, b'G', b'Z'),
                other => other,
            };
            i += 1;
        }
    }
    // Only ASCII letters and digits changed, into ASCII letters and digits.
    String::from_utf8(bytes).expect("still UTF-8")
}

/// What a log would show of `text` as a backend URI: `Display` and `Debug` of the URI or of
/// the error.
fn shown(parsed: &Result<BackendUri, plannt_lightning::UriError>) -> [String; 2] {
    match parsed {
        Ok(uri) => [uri.to_string(), format!("{uri:?}")],
        Err(e) => [e.to_string(), format!("{e:?}")],
    }
}

/// The secret the parser kept, if the URI carries one.
fn kept_secret(uri: &BackendUri) -> Option<&str> {
    match uri {
        BackendUri::LnBits { key, .. } => Some(key.expose()),
        BackendUri::Cln { rune, .. } => Some(rune.expose()),
        BackendUri::Phoenixd { password, .. } => Some(password.expose()),
        BackendUri::Nwc { secret, .. } => Some(secret.expose()),
        BackendUri::Lnd {
            macaroon: MacaroonSource::Hex(macaroon),
            ..
        } => Some(macaroon.expose()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = text.parse::<BackendUri>();
    if let Ok(uri) = &parsed {
        let _ = uri.backend();
    }

    let values = secret_values(&text);
    let mut secrets: Vec<String> = values.iter().flat_map(|(_, forms)| forms.clone()).collect();
    if let Some(kept) = parsed.as_ref().ok().and_then(kept_secret) {
        secrets.push(kept.to_string());
    }
    secrets.retain(|s| s.chars().count() >= MIN_SECRET_CHARS);
    if secrets.is_empty() {
        return;
    }

    let printed = shown(&parsed);
    let ranges: Vec<Range<usize>> = values.into_iter().map(|(range, _)| range).collect();
    let changed_text = change_secrets(&text, &ranges);
    let changed = shown(&changed_text.parse::<BackendUri>());
    for secret in &secrets {
        for (which, (output, output_changed)) in printed.iter().zip(&changed).enumerate() {
            let kind = match (parsed.is_ok(), which) {
                (true, 0) => "the URI's Display",
                (true, _) => "the URI's Debug",
                (false, 0) => "the error's Display",
                (false, _) => "the error's Debug",
            };
            assert!(
                !output.contains(secret.as_str()) || output == output_changed,
                "{kind} shows the secret {secret:?}: {output}"
            );
        }
    }
});
