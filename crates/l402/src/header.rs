//! The two headers of L402: the `WWW-Authenticate` challenge and the `Authorization` credential.
//!
//! We write exactly `L402 macaroon="<base64>", invoice="<bolt11>"`: several widely used clients
//! read it with a regex. We read every form seen in the wild: `L402` or `LSAT` in any case,
//! `macaroon=` or the 2026 `token=`, quoted or not, extra parameters, other schemes beside it,
//! and several header values.

use crate::Preimage;
use std::fmt;

use crate::macaroon::{Macaroon, MacaroonError};

/// The longest header value we read. Real ones are a few kilobytes.
pub const MAX_HEADER_LEN: usize = 32 * 1024;
/// The most macaroons one credential may carry.
pub const MAX_MACAROONS: usize = 8;

/// The authentication scheme name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `L402`, the current name.
    L402,
    /// `LSAT`, the old name, still sent by Aperture and old clients.
    Lsat,
}

impl Scheme {
    pub(crate) fn parse(text: &str) -> Option<Scheme> {
        if text.eq_ignore_ascii_case("L402") {
            Some(Scheme::L402)
        } else if text.eq_ignore_ascii_case("LSAT") {
            Some(Scheme::Lsat)
        } else {
            None
        }
    }

    /// The canonical name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::L402 => "L402",
            Scheme::Lsat => "LSAT",
        }
    }
}

/// A payment challenge: the macaroon to present once the invoice is paid.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme the server used.
    pub scheme: Scheme,
    /// The macaroon, decoded.
    pub macaroon: Macaroon,
    /// The BOLT11 invoice, as sent.
    pub invoice: String,
    /// The `version` parameter of the 2026 form, if present.
    pub version: Option<String>,
}

/// Why no usable challenge was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// No `L402`/`LSAT` challenge in any header value.
    #[error("no L402 or LSAT challenge in WWW-Authenticate")]
    Missing,
    /// A header value is longer than [`MAX_HEADER_LEN`].
    #[error("a WWW-Authenticate value is {0} bytes, more than the {MAX_HEADER_LEN} we read")]
    TooLong(usize),
    /// The challenge has no `macaroon=` or `token=` parameter.
    #[error("the L402 challenge has no macaroon= (or token=) parameter")]
    NoMacaroon,
    /// The challenge has no `invoice=` parameter.
    #[error("the L402 challenge has no invoice= parameter")]
    NoInvoice,
    /// The macaroon does not decode.
    #[error("the challenge's macaroon is unusable: {0}")]
    Macaroon(#[from] MacaroonError),
    /// The invoice has characters no BOLT11 invoice has.
    #[error("the challenge's invoice is not a BOLT11 string (letters and digits only)")]
    BadInvoice,
    /// A quoted string never ends.
    #[error("a quoted value in WWW-Authenticate never ends")]
    UnterminatedQuote,
}

impl Challenge {
    /// A challenge for `macaroon` and `invoice`, in the L402 scheme.
    pub fn new(macaroon: Macaroon, invoice: impl Into<String>) -> Self {
        Challenge {
            scheme: Scheme::L402,
            macaroon,
            invoice: invoice.into(),
            version: None,
        }
    }

    /// The header value: `L402 macaroon="<base64 std, padded>", invoice="<bolt11>"`.
    pub fn to_header_value(&self) -> String {
        format!(
            "{} macaroon=\"{}\", invoice=\"{}\"",
            self.scheme.as_str(),
            self.macaroon.to_base64(),
            self.invoice
        )
    }

    /// The 2026 form, `L402 version="0", token="…", invoice="…"`, for servers that ask for it.
    pub fn to_header_value_v2026(&self) -> String {
        format!(
            "{} version=\"0\", token=\"{}\", invoice=\"{}\"",
            self.scheme.as_str(),
            self.macaroon.to_base64(),
            self.invoice
        )
    }

    /// Finds the first usable L402 challenge among `WWW-Authenticate` values, preferring `L402`
    /// to `LSAT`. An unusable L402 challenge is reported only if nothing better is found.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, ChallengeError> {
        let mut lsat = None;
        let mut first_error = None;
        for value in values {
            if value.len() > MAX_HEADER_LEN {
                first_error.get_or_insert(ChallengeError::TooLong(value.len()));
                continue;
            }
            let raw = match parse_auth_header(value) {
                Ok(raw) => raw,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            for raw in raw {
                let Some(scheme) = Scheme::parse(raw.scheme) else {
                    continue;
                };
                match Self::from_params(scheme, &raw.params) {
                    Ok(c) if scheme == Scheme::L402 => return Ok(c),
                    Ok(c) => {
                        lsat.get_or_insert(c);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        lsat.ok_or(first_error.unwrap_or(ChallengeError::Missing))
    }

    pub(crate) fn from_params(
        scheme: Scheme,
        params: &[(&str, String)],
    ) -> Result<Self, ChallengeError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let token = get("macaroon")
            .or_else(|| get("token"))
            .ok_or(ChallengeError::NoMacaroon)?;
        let invoice = get("invoice")
            .filter(|v| !v.is_empty())
            .ok_or(ChallengeError::NoInvoice)?;
        // BOLT11 is bech32: letters and digits. Anything else cannot be paid, and could not be
        // written back into a quoted header value unchanged.
        if !invoice.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ChallengeError::BadInvoice);
        }
        Ok(Challenge {
            scheme,
            macaroon: Macaroon::from_base64(token)?,
            invoice: invoice.to_string(),
            version: get("version").map(str::to_string),
        })
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("scheme", &self.scheme)
            .field("macaroon", &self.macaroon)
            .field("invoice", &self.invoice)
            .field("version", &self.version)
            .finish()
    }
}

/// One challenge of a `WWW-Authenticate` value: its scheme and its parameters, unquoted, in order.
pub(crate) struct RawChallenge<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) params: Vec<(&'a str, String)>,
}

impl RawChallenge<'_> {
    /// The first parameter of this name, in any case (RFC 9110 leaves a repeated name undefined;
    /// the first denies an on-path element appending its own value).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A lenient reader of RFC 9110 challenges: `scheme param=value, param="value", scheme2 …`.
pub(crate) fn parse_auth_header(value: &str) -> Result<Vec<RawChallenge<'_>>, ChallengeError> {
    let bytes = value.as_bytes();
    let mut pos = 0;
    let mut out: Vec<RawChallenge<'_>> = Vec::new();
    let skip = |pos: &mut usize, set: &[u8]| {
        while *pos < bytes.len() && set.contains(&bytes[*pos]) {
            *pos += 1;
        }
    };
    let token = |pos: &mut usize| {
        let start = *pos;
        while *pos < bytes.len() && is_tchar(bytes[*pos]) {
            *pos += 1;
        }
        &value[start..*pos]
    };
    while pos < bytes.len() {
        skip(&mut pos, b" \t,");
        let scheme = token(&mut pos);
        if scheme.is_empty() {
            // Not a token: skip the byte (always ASCII here, so `pos` stays on a char boundary
            // once we move past any multi-byte character).
            pos += 1;
            while pos < bytes.len() && !value.is_char_boundary(pos) {
                pos += 1;
            }
            continue;
        }
        let mut challenge = RawChallenge {
            scheme,
            params: Vec::new(),
        };
        loop {
            skip(&mut pos, b" \t");
            let start = pos;
            let name = token(&mut pos);
            let mut after = pos;
            skip(&mut after, b" \t");
            if name.is_empty() || after >= bytes.len() || bytes[after] != b'=' {
                pos = start;
                break;
            }
            pos = after + 1;
            skip(&mut pos, b" \t");
            let param_value = if pos < bytes.len() && bytes[pos] == b'"' {
                pos += 1;
                let mut text = String::new();
                loop {
                    let Some(&b) = bytes.get(pos) else {
                        return Err(ChallengeError::UnterminatedQuote);
                    };
                    match b {
                        b'"' => {
                            pos += 1;
                            break;
                        }
                        b'\\' if pos + 1 < bytes.len() && bytes[pos + 1].is_ascii() => {
                            text.push(bytes[pos + 1] as char);
                            pos += 2;
                        }
                        _ => {
                            let ch = value[pos..].chars().next().expect("in bounds");
                            text.push(ch);
                            pos += ch.len_utf8();
                        }
                    }
                }
                text
            } else {
                let start = pos;
                while pos < bytes.len() && !matches!(bytes[pos], b',' | b' ' | b'\t') {
                    pos += 1;
                }
                value[start..pos].to_string()
            };
            challenge.params.push((name, param_value));
            skip(&mut pos, b" \t");
            if pos < bytes.len() && bytes[pos] == b',' {
                pos += 1;
            }
        }
        out.push(challenge);
    }
    Ok(out)
}

/// A credential: the macaroons and the preimage that pays for them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The scheme the client used.
    pub scheme: Scheme,
    /// One or more macaroons (the spec allows several, comma-separated).
    pub macaroons: Vec<Macaroon>,
    /// The preimage that pays for them.
    pub preimage: Preimage,
}

/// Why an `Authorization` value is not a usable L402 credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The value does not start with `L402` or `LSAT`.
    #[error("the Authorization scheme is not L402 or LSAT")]
    NotL402,
    /// The value is longer than [`MAX_HEADER_LEN`].
    #[error("the Authorization value is {0} bytes, more than the {MAX_HEADER_LEN} we read")]
    TooLong(usize),
    /// The value is not valid UTF-8.
    #[error("the Authorization value is not valid text")]
    NotText,
    /// No `:` between the macaroons and the preimage.
    #[error("expected `L402 <macaroon>:<preimage hex>`, found no `:`")]
    NoColon,
    /// The preimage is not 64 hex characters.
    #[error("the preimage must be 64 hex characters")]
    BadPreimage,
    /// No macaroon before the `:`.
    #[error("no macaroon before the `:`")]
    NoMacaroon,
    /// More than [`MAX_MACAROONS`] macaroons.
    #[error("more than {MAX_MACAROONS} macaroons in one credential")]
    TooManyMacaroons,
    /// A macaroon does not decode.
    #[error("macaroon {index} is unusable: {error}")]
    Macaroon {
        /// Its position, from 1.
        index: usize,
        /// What is wrong with it.
        error: MacaroonError,
    },
    /// Several different L402 credentials in one request.
    #[error("several different L402 credentials in one request; send one")]
    Conflicting,
}

impl Credential {
    /// A credential for one macaroon.
    pub fn new(macaroon: Macaroon, preimage: impl Into<Preimage>) -> Self {
        Credential {
            scheme: Scheme::L402,
            macaroons: vec![macaroon],
            preimage: preimage.into(),
        }
    }

    /// The header value: `L402 <base64>[,<base64>…]:<preimage hex>`.
    pub fn to_header_value(&self) -> String {
        let macaroons: Vec<String> = self.macaroons.iter().map(Macaroon::to_base64).collect();
        format!(
            "{} {}:{}",
            self.scheme.as_str(),
            macaroons.join(","),
            self.preimage.to_hex()
        )
    }

    /// Parses one `Authorization` value.
    pub fn parse(value: &str) -> Result<Self, CredentialError> {
        let (scheme, rest) = split_scheme(value)?;
        let (macaroons, preimage) = rest.rsplit_once(':').ok_or(CredentialError::NoColon)?;
        let preimage =
            Preimage::from_hex(preimage.trim()).map_err(|_| CredentialError::BadPreimage)?;
        let macaroons = macaroons.trim();
        if macaroons.is_empty() {
            return Err(CredentialError::NoMacaroon);
        }
        if macaroons.split(',').count() > MAX_MACAROONS {
            return Err(CredentialError::TooManyMacaroons);
        }
        let macaroons = macaroons
            .split(',')
            .enumerate()
            .map(|(i, text)| {
                Macaroon::from_base64(text).map_err(|error| CredentialError::Macaroon {
                    index: i + 1,
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Credential {
            scheme,
            macaroons,
            preimage,
        })
    }

    /// Finds the L402 credential among every `Authorization` value of a request.
    ///
    /// Values of other schemes are left for the upstream. `Ok(None)` means there is no L402
    /// credential (answer with a challenge). The same credential under both `LSAT` and `L402`
    /// (as Aperture forwards it) counts once; two different ones are refused.
    pub fn from_headers<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<Self>, CredentialError> {
        // (the whole value to parse, the part after the scheme to compare)
        let mut found: Option<(&str, &str)> = None;
        for value in values {
            if value.len() > MAX_HEADER_LEN {
                // Another scheme's oversized value is the upstream's business, not ours.
                if starts_with_l402(value) {
                    return Err(CredentialError::TooLong(value.len()));
                }
                continue;
            }
            let Ok(text) = std::str::from_utf8(value) else {
                // Another scheme may carry binary; only an L402 value that is not text is ours to refuse.
                if starts_with_l402(value) {
                    return Err(CredentialError::NotText);
                }
                continue;
            };
            let rest = match split_scheme(text) {
                Ok((_, rest)) => rest.trim(),
                Err(CredentialError::NotL402) => continue,
                Err(e) => return Err(e),
            };
            match found {
                Some((_, earlier)) if earlier != rest => return Err(CredentialError::Conflicting),
                Some(_) => {}
                None => found = Some((text, rest)),
            }
        }
        found.map(|(text, _)| Self::parse(text)).transpose()
    }
}

fn starts_with_l402(value: &[u8]) -> bool {
    value.len() >= 4
        && (value[..4].eq_ignore_ascii_case(b"L402") || value[..4].eq_ignore_ascii_case(b"LSAT"))
}

fn split_scheme(value: &str) -> Result<(Scheme, &str), CredentialError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(CredentialError::TooLong(value.len()));
    }
    let value = value.trim();
    let Some((scheme, rest)) = value.split_once([' ', '\t']) else {
        // A bare `L402` is ours, and empty.
        return Err(match Scheme::parse(value) {
            Some(_) => CredentialError::NoMacaroon,
            None => CredentialError::NotL402,
        });
    };
    let scheme = Scheme::parse(scheme).ok_or(CredentialError::NotL402)?;
    Ok((scheme, rest))
}

impl fmt::Debug for Credential {
    // The preimage is the proof of payment: show only that it is there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("scheme", &self.scheme)
            .field("macaroons", &self.macaroons)
            .field("preimage", &"<redacted>")
            .finish()
    }
}
