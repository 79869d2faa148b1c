//! Hostile input for every parser of untrusted input in `plannt-l402`.
//!
//! Each parser gets a table of at least thirty inputs, one a line, each with the exact outcome
//! expected (the typed error variant, asserted with `matches!`). A panic is caught and reported
//! as a failure of that line, so one bad input does not hide the others. Covered:
//! `Macaroon::from_binary` (every truncation of a real token, varint abuse, field order, sizes),
//! `Macaroon::from_base64` (alphabets, padding, trailing bits, whitespace), `Identifier::decode`,
//! `Caveat::parse`, `Credential::parse`, `Credential::from_headers`, `Challenge::parse` and
//! `RootKey::from_hex`.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

use plannt_l402::{
    CaveatError, Challenge, ChallengeError, Credential, CredentialError, Identifier,
    IdentifierError, KeyError, KeyRing, MAX_CAVEATS, MAX_HEADER_LEN, MAX_MACAROON_BYTES, Macaroon,
    MacaroonError, MintRequest, PaymentHash, Preimage, RootKey, Scheme,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// The table machinery.

struct Case<I, R> {
    input: I,
    source: &'static str,
    expect: &'static str,
    check: fn(&R) -> bool,
}

/// `table!(Input => Output; input => pattern, …)`: one line per hostile input.
macro_rules! table {
    ($in:ty => $out:ty; $( $value:expr => $pat:pat $(if $guard:expr)? ),+ $(,)?) => {
        vec![ $( Case::<$in, $out> {
            input: <$in>::from($value),
            source: stringify!($value),
            expect: stringify!($pat),
            check: |r: &$out| matches!(r, $pat $(if $guard)?),
        } ),+ ]
    };
}

fn short(text: &str) -> String {
    if text.len() <= 160 {
        return text.to_string();
    }
    let mut end = 160;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Runs every case, collecting mismatches and panics, and returns how many inputs were tried.
fn run<I, R: Debug>(parser: &str, cases: Vec<Case<I, R>>, parse: impl Fn(&I) -> R) -> usize {
    let mut failures = Vec::new();
    for (line, case) in cases.iter().enumerate() {
        match catch_unwind(AssertUnwindSafe(|| parse(&case.input))) {
            Ok(result) if (case.check)(&result) => {}
            Ok(result) => failures.push(format!(
                "{parser} case {line} `{}`: got {}, expected {}",
                short(case.source),
                short(&format!("{result:?}")),
                case.expect
            )),
            Err(_) => failures.push(format!(
                "{parser} case {line} `{}`: PANICKED, expected {}",
                short(case.source),
                case.expect
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    cases.len()
}

// ---------------------------------------------------------------------------------------------
// Fixtures: a real minted token, and a hand encoder for broken ones.

const PREIMAGE: [u8; 32] = [42; 32];
const ZERO: [u8; 32] = [0; 32];

fn ring() -> KeyRing {
    KeyRing::single(RootKey::new([7; 32]))
}

fn real() -> Macaroon {
    let payment_hash = PaymentHash(Sha256::digest(PREIMAGE).into());
    ring()
        .mint(&MintRequest {
            payment_hash,
            route: "demo",
            valid_until: 2_000_000_000,
            conditions: &[("max_tokens", "100")],
        })
        .unwrap()
}

fn real_bin() -> Vec<u8> {
    real().to_binary()
}

fn real_b64() -> String {
    real().to_base64()
}

/// The real token's text, guaranteed to contain both a `+` or `/` (for alphabet mixing).
fn real_b64_with_std_chars() -> String {
    loop {
        let text = real_b64();
        if text.contains('+') || text.contains('/') {
            return text;
        }
    }
}

fn hex_preimage() -> String {
    hex::encode(PREIMAGE)
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// One field: `varint type, varint length, data`.
fn f(kind: u64, data: &[u8]) -> Vec<u8> {
    let mut out = varint(kind);
    out.extend(varint(data.len() as u64));
    out.extend_from_slice(data);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const V2: &[u8] = &[2];
const EOS: &[u8] = &[0];

fn sig(len: usize) -> Vec<u8> {
    f(6, &vec![0x5a; len])
}

/// A minimal well-formed macaroon with `n` first-party caveats.
fn with_caveats(n: usize) -> Vec<u8> {
    let mut out = cat(&[V2, &f(2, b"id"), EOS]);
    for i in 0..n {
        out.extend(f(2, format!("c{i}").as_bytes()));
        out.push(0);
    }
    out.push(0);
    out.extend(sig(32));
    out
}

/// A well-formed macaroon of exactly `len` bytes (its identifier takes up the slack).
fn of_size(len: usize) -> Vec<u8> {
    let overhead = cat(&[V2, &f(2, &[1; 200]), EOS, EOS, &sig(32)]).len() - 200;
    let id_len = len - overhead;
    let out = cat(&[V2, &f(2, &vec![b'i'; id_len]), EOS, EOS, &sig(32)]);
    assert_eq!(
        out.len(),
        len,
        "identifier lengths past 16383 change the overhead"
    );
    out
}

fn append(mut bytes: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    bytes.extend_from_slice(extra);
    bytes
}

fn b64(bytes: &[u8]) -> String {
    plannt_l402::base64_encode(bytes)
}

/// Replaces the first occurrence of `from` in `text`.
/// The token with its first two base64 characters replaced by one of each URL-safe alphabet's
/// own characters next to one of the standard alphabet's: mixed alphabets, whatever the token.
fn mixed_alphabets(text: &str) -> String {
    format!("-/{}", &text[2..])
}

fn insert_at_middle(text: &str, what: &str) -> String {
    let mid = text.len() / 2;
    format!("{}{}{}", &text[..mid], what, &text[mid..])
}

/// The base64 of `bytes` with the last data character bumped so the unused low bits are not zero.
fn noncanonical_trailing_bits(bytes: &[u8]) -> String {
    assert_ne!(bytes.len() % 3, 0, "needs padding to have spare bits");
    let text = b64(bytes);
    let data = text.trim_end_matches('=');
    let last = data.chars().last().unwrap();
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = ALPHABET.find(last).unwrap();
    let bumped = ALPHABET.as_bytes()[pos + 1] as char; // spare bits are zero, so +1 stays in range
    format!(
        "{}{}{}",
        &data[..data.len() - 1],
        bumped,
        &text[data.len()..]
    )
}

// ---------------------------------------------------------------------------------------------
// Macaroon::from_binary

#[test]
fn every_truncation_of_a_real_macaroon_is_refused_as_truncated() {
    // A token with a location, first-party caveats and a third-party caveat with all its fields.
    let mut bin = real_bin();
    let eos_at = bin.len() - 35; // the EOS before the signature field
    assert_eq!(bin[eos_at], 0);
    let third = cat(&[&f(1, b"https://auth"), &f(2, b"cid"), &f(4, &[9; 48]), EOS]);
    bin.splice(eos_at..eos_at, third);
    assert!(Macaroon::from_binary(&bin).is_ok());

    for cut in 0..bin.len() {
        let result = catch_unwind(|| Macaroon::from_binary(&bin[..cut]));
        match result {
            Ok(Err(MacaroonError::Empty)) if cut == 0 => {}
            Ok(Err(MacaroonError::Truncated)) if cut > 0 => {}
            other => panic!("cut at {cut} of {}: {other:?}", bin.len()),
        }
    }
}

#[test]
fn every_truncation_of_a_real_macaroon_in_base64_is_refused() {
    let text = real_b64();
    // Cuts inside the trailing `=` padding are left out: the decoder accepts partial padding.
    let data_len = text.trim_end_matches('=').len();
    for cut in 0..data_len {
        let result = Macaroon::from_base64(&text[..cut]);
        assert!(
            matches!(
                result,
                Err(MacaroonError::Empty | MacaroonError::Truncated | MacaroonError::NotBase64)
            ),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn limits_are_inclusive() {
    assert_eq!(
        Macaroon::from_binary(&with_caveats(MAX_CAVEATS))
            .unwrap()
            .caveats()
            .len(),
        MAX_CAVEATS
    );
    assert!(Macaroon::from_binary(&of_size(MAX_MACAROON_BYTES)).is_ok());
    assert!(Macaroon::from_base64(&b64(&of_size(MAX_MACAROON_BYTES))).is_ok());
}

#[test]
fn from_binary_refuses_hostile_bytes() {
    let bin = real_bin();
    let n = run(
        "Macaroon::from_binary",
        table![Vec<u8> => Result<Macaroon, MacaroonError>;
            // Empty and version byte.
            b"" => Err(MacaroonError::Empty),
            [0u8] => Err(MacaroonError::UnsupportedVersion(0)),
            [1u8] => Err(MacaroonError::UnsupportedVersion(1)),
            cat(&[&[3], &bin[1..]]) => Err(MacaroonError::UnsupportedVersion(3)),
            cat(&[&[1], &bin[1..]]) => Err(MacaroonError::UnsupportedVersion(1)),
            b"0024location http://mybank/\n" => Err(MacaroonError::UnsupportedVersion(b'0')),
            real_b64().into_bytes() => Err(MacaroonError::UnsupportedVersion(b'A')),
            "☃".as_bytes() => Err(MacaroonError::UnsupportedVersion(0xe2)),
            [0xffu8; 100] => Err(MacaroonError::UnsupportedVersion(0xff)),
            [2u8] => Err(MacaroonError::Truncated),
            // Trailing bytes after the signature.
            append(bin.clone(), &[0]) => Err(MacaroonError::TrailingBytes(1)),
            append(bin.clone(), &[0x5a; 100]) => Err(MacaroonError::TrailingBytes(100)),
            append(bin.clone(), &bin) => Err(MacaroonError::TrailingBytes(_)),
            // Signature length.
            cat(&[V2, &f(2, b"id"), EOS, EOS, &sig(31)]) => Err(MacaroonError::BadSignatureLength(31)),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &sig(33)]) => Err(MacaroonError::BadSignatureLength(33)),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &sig(0)]) => Err(MacaroonError::BadSignatureLength(0)),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &sig(64)]) => Err(MacaroonError::BadSignatureLength(64)),
            cat(&[V2, &f(2, b"id"), EOS, EOS]) => Err(MacaroonError::Truncated),
            // Missing EOS markers.
            cat(&[V2, &f(2, b"id"), &f(2, b"cav"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 2, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(2, b"cav"), EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 6, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(2, b"a"), &f(2, b"b"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 2, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 6, .. }),
            cat(&[V2, &f(2, b"id"), &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 6, .. }),
            // Fields out of order or missing.
            cat(&[V2, &f(2, b"id"), &f(1, b"loc"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 1, .. }),
            cat(&[V2, &f(1, b"loc"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 0, .. }),
            cat(&[V2, &f(1, b"a"), &f(1, b"b"), &f(2, b"id"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 1, .. }),
            cat(&[V2, EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 0, .. }),
            cat(&[V2, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 6, .. }),
            [2u8, 0] => Err(MacaroonError::UnexpectedField { found: 0, .. }),
            append(vec![2], &[0; 100]) => Err(MacaroonError::UnexpectedField { found: 0, .. }),
            cat(&[V2, &f(2, b""), EOS, EOS, &sig(32)]) => Err(MacaroonError::MissingIdentifier),
            cat(&[V2, &f(1, b"loc"), &f(2, b""), EOS, EOS, &sig(32)]) => Err(MacaroonError::MissingIdentifier),
            cat(&[V2, &f(2, b"id"), EOS, &f(4, b"vid"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 4, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(1, b"l"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 0, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(1, b"l"), &f(1, b"l"), &f(2, b"c"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 1, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(2, b"c"), &f(4, b"v"), &f(4, b"v"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 4, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(2, b"c"), &f(1, b"l"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 1, .. }),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &f(2, b"sig")]) => Err(MacaroonError::UnexpectedField { found: 2, .. }),
            // Unknown field types.
            cat(&[V2, &f(3, b"x"), &f(2, b"id"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 3, .. }),
            cat(&[V2, &f(2, b"id"), &f(5, b"x"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 5, .. }),
            cat(&[V2, &f(2, b"id"), EOS, &f(2, b"c"), &f(5, b"x"), EOS, EOS, &sig(32)]) => Err(MacaroonError::UnexpectedField { found: 5, .. }),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &f(7, &[0; 32])]) => Err(MacaroonError::UnexpectedField { found: 7, .. }),
            cat(&[V2, &f(127, b"x")]) => Err(MacaroonError::UnexpectedField { found: 127, .. }),
            cat(&[V2, &f(1 << 63, b"x")]) => Err(MacaroonError::UnexpectedField { found: 0x8000_0000_0000_0000, .. }),
            cat(&[V2, &f(u64::MAX, b"x")]) => Err(MacaroonError::UnexpectedField { found: u64::MAX, .. }),
            // Lengths larger than the input.
            cat(&[V2, &[2, 100], b"abc"]) => Err(MacaroonError::Truncated),
            cat(&[V2, &[2], &varint(u64::MAX), b"abc"]) => Err(MacaroonError::Truncated),
            cat(&[V2, &[2], &varint(1 << 40), b"abc"]) => Err(MacaroonError::Truncated),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &[6], &varint(u64::MAX), &[0; 32]]) => Err(MacaroonError::Truncated),
            cat(&[V2, &f(2, b"id"), EOS, &[2], &varint(usize::MAX as u64)]) => Err(MacaroonError::Truncated),
            // Varints: too long, overflowing, unfinished.
            cat(&[V2, &[2], &[0x80; 10], &[0]]) => Err(MacaroonError::BadVarint),
            cat(&[V2, &[2], &[0xff; 10], &[1]]) => Err(MacaroonError::BadVarint),
            cat(&[V2, &[2], &[0xff; 9], &[2]]) => Err(MacaroonError::BadVarint),
            cat(&[V2, &[0xff; 9], &[0x7f]]) => Err(MacaroonError::BadVarint),
            cat(&[V2, &[0x80; 20]]) => Err(MacaroonError::BadVarint),
            cat(&[V2, &[0xff; 100]]) => Err(MacaroonError::BadVarint),
            cat(&[V2, &[2, 0x80, 0x80]]) => Err(MacaroonError::Truncated),
            cat(&[V2, &[0x80]]) => Err(MacaroonError::Truncated),
            cat(&[V2, &f(2, b"id"), EOS, EOS, &[6, 0xa0]]) => Err(MacaroonError::Truncated),
            // Too many caveats, too many bytes.
            with_caveats(MAX_CAVEATS + 1) => Err(MacaroonError::TooManyCaveats),
            with_caveats(1000) => Err(MacaroonError::TooManyCaveats),
            of_size(MAX_MACAROON_BYTES + 1) => Err(MacaroonError::TooLarge(8193)),
            vec![2u8; 1 << 20] => Err(MacaroonError::TooLarge(1_048_576)),
            vec![0u8; 1 << 20] => Err(MacaroonError::TooLarge(1_048_576)),
            // NUL bytes where text is expected are just bytes: the structure decides.
            cat(&[V2, &f(2, &[0; 66]), EOS, EOS, &[0; 34]]) => Err(MacaroonError::UnexpectedField { found: 0, .. }),
        ],
        |bytes| Macaroon::from_binary(bytes),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Macaroon::from_base64

#[test]
fn from_base64_refuses_hostile_text() {
    let text = real_b64_with_std_chars();
    let url = text.replace('+', "-").replace('/', "_");
    // The trailing-bits case needs a binary whose length is not a multiple of 3, so that the
    // last base64 character carries spare bits.
    let odd = cat(&[V2, &f(2, b"identifier"), EOS, EOS, &sig(32)]);
    let odd = if odd.len().is_multiple_of(3) {
        cat(&[V2, &f(2, b"identifier!"), EOS, EOS, &sig(32)])
    } else {
        odd
    };

    let n = run(
        "Macaroon::from_base64",
        table![String => Result<Macaroon, MacaroonError>;
            "" => Err(MacaroonError::Empty),
            "   " => Err(MacaroonError::Empty),
            "\t\r\n" => Err(MacaroonError::Empty),
            "\u{3000}\u{a0}" => Err(MacaroonError::Empty),
            // Mixed alphabets.
            format!("{}-", text.trim_end_matches('=')) => Err(MacaroonError::NotBase64),
            mixed_alphabets(&text) => Err(MacaroonError::NotBase64),
            format!("{url}+") => Err(MacaroonError::NotBase64),
            "a+b-" => Err(MacaroonError::NotBase64),
            "AgE_/w==" => Err(MacaroonError::NotBase64),
            // Bad padding.
            format!("{text}=") => Err(MacaroonError::NotBase64),
            format!("{text}====") => Err(MacaroonError::NotBase64),
            format!("={text}") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "=") => Err(MacaroonError::NotBase64),
            "QQ===" => Err(MacaroonError::NotBase64),
            "Q===" => Err(MacaroonError::NotBase64),
            "====" => Err(MacaroonError::NotBase64),
            "=" => Err(MacaroonError::NotBase64),
            "A" => Err(MacaroonError::NotBase64),
            "AgEAA" => Err(MacaroonError::NotBase64),
            // Non-canonical trailing bits.
            noncanonical_trailing_bits(&odd) => Err(MacaroonError::NotBase64),
            noncanonical_trailing_bits(&odd).trim_end_matches('=').to_string() => Err(MacaroonError::NotBase64),
            "QR==" => Err(MacaroonError::NotBase64),
            "Ah==" => Err(MacaroonError::NotBase64),
            // Whitespace and junk inside.
            insert_at_middle(&text, " ") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "\n") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "\t") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "\r\n ") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "\u{200b}") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "\0") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "é") => Err(MacaroonError::NotBase64),
            insert_at_middle(&text, "🍪") => Err(MacaroonError::NotBase64),
            "AgÉ=" => Err(MacaroonError::NotBase64),
            "ＡｇＥ" => Err(MacaroonError::NotBase64),
            "AgE%3D" => Err(MacaroonError::NotBase64),
            format!("\"{text}\"") => Err(MacaroonError::NotBase64),
            format!("L402 {text}") => Err(MacaroonError::NotBase64),
            format!("base64:{text}") => Err(MacaroonError::NotBase64),
            format!("{text}:{}", hex_preimage()) => Err(MacaroonError::NotBase64),
            "\0\0\0\0" => Err(MacaroonError::NotBase64),
            // Valid base64, not a macaroon.
            "AAAA" => Err(MacaroonError::UnsupportedVersion(0)),
            "AQ==" => Err(MacaroonError::UnsupportedVersion(1)),
            hex::encode(&real_bin()[..60]) => Err(MacaroonError::UnsupportedVersion(0xd3)),
            "Ag==" => Err(MacaroonError::Truncated),
            "Ag" => Err(MacaroonError::Truncated),
            b64(&real_bin()[..100]) => Err(MacaroonError::Truncated),
            b64(&append(real_bin(), b"x")) => Err(MacaroonError::TrailingBytes(1)),
            b64(&cat(&[V2, &f(2, b"id"), EOS, EOS, &sig(31)])) => Err(MacaroonError::BadSignatureLength(31)),
            b64(&cat(&[V2, &f(2, b"id"), EOS, EOS, &sig(33)])) => Err(MacaroonError::BadSignatureLength(33)),
            b64(&with_caveats(MAX_CAVEATS + 1)) => Err(MacaroonError::TooManyCaveats),
            b64(&cat(&[V2, &[2], &[0x80; 10], &[0]])) => Err(MacaroonError::BadVarint),
            // Too large: decoded, and refused before decoding.
            b64(&of_size(MAX_MACAROON_BYTES + 1)) => Err(MacaroonError::TooLarge(8193)),
            "A".repeat(1 << 20) => Err(MacaroonError::TooLarge(_)),
            "!".repeat(1 << 20) => Err(MacaroonError::TooLarge(_)),
            format!("{text},").repeat(5000) => Err(MacaroonError::TooLarge(_)),
        ],
        |text| Macaroon::from_base64(text),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Identifier::decode

#[test]
fn identifier_decode_refuses_every_wrong_length_and_version() {
    for len in (0..66).chain([67, 68, 100, 132, 1000, 1 << 20]) {
        assert_eq!(
            Identifier::decode(&vec![0; len]),
            Err(IdentifierError::WrongLength(len))
        );
    }
    let versioned = |hi: u8, lo: u8| {
        let mut bytes = vec![0u8; 66];
        bytes[0] = hi;
        bytes[1] = lo;
        bytes
    };
    let n = run(
        "Identifier::decode",
        table![Vec<u8> => Result<Identifier, IdentifierError>;
            b"" => Err(IdentifierError::WrongLength(0)),
            [0u8] => Err(IdentifierError::WrongLength(1)),
            [0u8, 0] => Err(IdentifierError::WrongLength(2)),
            [0u8; 32] => Err(IdentifierError::WrongLength(32)),
            [0u8; 34] => Err(IdentifierError::WrongLength(34)),
            [0u8; 64] => Err(IdentifierError::WrongLength(64)),
            [0u8; 65] => Err(IdentifierError::WrongLength(65)),
            [0u8; 67] => Err(IdentifierError::WrongLength(67)),
            [0u8; 68] => Err(IdentifierError::WrongLength(68)),
            [0u8; 98] => Err(IdentifierError::WrongLength(98)),
            [0u8; 132] => Err(IdentifierError::WrongLength(132)),
            vec![0u8; 1 << 20] => Err(IdentifierError::WrongLength(1_048_576)),
            b"we used our secret key" => Err(IdentifierError::WrongLength(22)),
            "ünïcødé identifier ☃".as_bytes() => Err(IdentifierError::WrongLength(_)),
            [0xffu8; 65] => Err(IdentifierError::WrongLength(65)),
            [0xffu8; 67] => Err(IdentifierError::WrongLength(67)),
            hex::encode([0u8; 33]).into_bytes() => Err(IdentifierError::UnknownVersion(0x3030)),
            hex::encode([0u8; 66]).into_bytes() => Err(IdentifierError::WrongLength(132)),
            plannt_l402::base64_encode(&[0u8; 66]).into_bytes() => Err(IdentifierError::WrongLength(88)),
            Identifier { payment_hash: PaymentHash([1; 32]), token_id: [2; 32] }.encode()[..65].to_vec() => Err(IdentifierError::WrongLength(65)),
            append(Identifier { payment_hash: PaymentHash([1; 32]), token_id: [2; 32] }.encode().to_vec(), &[0]) => Err(IdentifierError::WrongLength(67)),
            versioned(0, 1) => Err(IdentifierError::UnknownVersion(1)),
            versioned(0, 2) => Err(IdentifierError::UnknownVersion(2)),
            versioned(1, 0) => Err(IdentifierError::UnknownVersion(0x0100)),
            versioned(0x80, 0) => Err(IdentifierError::UnknownVersion(0x8000)),
            versioned(0xff, 0xff) => Err(IdentifierError::UnknownVersion(0xffff)),
            versioned(0, 0xff) => Err(IdentifierError::UnknownVersion(0xff)),
            [0xffu8; 66] => Err(IdentifierError::UnknownVersion(0xffff)),
            [b'A'; 66] => Err(IdentifierError::UnknownVersion(0x4141)),
            [0x20u8; 66] => Err(IdentifierError::UnknownVersion(0x2020)),
            // The control: all zeros is a valid identifier.
            versioned(0, 0) => Ok(Identifier { payment_hash: PaymentHash(ZERO), token_id: ZERO }),
        ],
        |bytes| Identifier::decode(bytes),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Caveat::parse

#[test]
fn caveat_parse_refuses_unreadable_caveats() {
    use CaveatError::Unreadable;
    let n = run(
        "Caveat::parse",
        table![Vec<u8> => Result<plannt_l402::Caveat, CaveatError>;
            b"" => Err(Unreadable { why: "no `=`", .. }),
            [0xffu8, b'=', b'1'] => Err(Unreadable { why: "not UTF-8", .. }),
            b"services=demo:0\xff" => Err(Unreadable { why: "not UTF-8", .. }),
            b"\xc3\x28=1" => Err(Unreadable { why: "not UTF-8", .. }),
            b"services" => Err(Unreadable { why: "no `=`", .. }),
            b"time < 2020-01-01T00:00" => Err(Unreadable { why: "no `=`", .. }),
            b"demo_valid_until" => Err(Unreadable { why: "no `=`", .. }),
            "a".repeat(1 << 20).into_bytes() => Err(Unreadable { why: "no `=`", .. }),
            b"services=" => Err(Unreadable { why: "a service is not `name:tier`", .. }),
            b"services=demo" => Err(Unreadable { why: "a service is not `name:tier`", .. }),
            b"services=demo:0," => Err(Unreadable { why: "a service is not `name:tier`", .. }),
            b"services=,demo:0" => Err(Unreadable { why: "a service is not `name:tier`", .. }),
            b"services=:0" => Err(Unreadable { why: "a service name is not plain", .. }),
            b"services=de mo:0" => Err(Unreadable { why: "a service name is not plain", .. }),
            "services=démo:0".as_bytes() => Err(Unreadable { why: "a service name is not plain", .. }),
            b"services=demo\0:0" => Err(Unreadable { why: "a service name is not plain", .. }),
            format!("services={}:0", "a".repeat(65)).into_bytes() => Err(Unreadable { why: "a service name is not plain", .. }),
            b"services=demo:256" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo:-1" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo:+1" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo: 0" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo:" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo:0:1" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo:0\0" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"services=demo:99999999999999999999999" => Err(Unreadable { why: "a tier is not a number from 0 to 255", .. }),
            b"demo_valid_until=" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=soon" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=-1" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=+1" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=1.5" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=1e9" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until= 100" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=0x10" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=18446744073709551616" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"demo_valid_until=99999999999999999999999" => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            "demo_valid_until=١٢٣".as_bytes() => Err(Unreadable { why: "expiry is not unix seconds", .. }),
            b"_valid_until=5" => Err(Unreadable { why: "the service name is not plain", .. }),
            "dé_valid_until=5".as_bytes() => Err(Unreadable { why: "the service name is not plain", .. }),
            b"de mo_valid_until=5" => Err(Unreadable { why: "the service name is not plain", .. }),
            b"_capabilities=a" => Err(Unreadable { why: "the service name is not plain", .. }),
            b"meme_capabilities=a,,b" => Err(Unreadable { why: "an empty capability", .. }),
            b"meme_capabilities=," => Err(Unreadable { why: "an empty capability", .. }),
            b"meme_capabilities=a," => Err(Unreadable { why: "an empty capability", .. }),
            b"demo_x=a\nb" => Err(Unreadable { why: "a control character in the value", .. }),
            b"demo_x=\0" => Err(Unreadable { why: "a control character in the value", .. }),
            b"demo_x=\x7f" => Err(Unreadable { why: "a control character in the value", .. }),
            "demo_x=\u{85}".as_bytes() => Err(Unreadable { why: "a control character in the value", .. }),
            b"demo_x=\r\n\r\nGET / HTTP/1.1" => Err(Unreadable { why: "a control character in the value", .. }),
            b"nounderscore=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"=" => Err(Unreadable { why: "unknown caveat", .. }),
            b"demo_=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"_x=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"demo_Upper=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"demo_x y=1" => Err(Unreadable { why: "unknown caveat", .. }),
            "demo_ü=1".as_bytes() => Err(Unreadable { why: "unknown caveat", .. }),
            b"a:b_x=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"demo\0_x=1" => Err(Unreadable { why: "unknown caveat", .. }),
            b"SERVICES=demo:0" => Err(Unreadable { why: "unknown caveat", .. }),
            b" services=demo:0" => Err(Unreadable { why: "unknown caveat", .. }),
            b"services =demo:0" => Err(Unreadable { why: "unknown caveat", .. }),
            b"demo_valid_until =5" => Err(Unreadable { why: "unknown caveat", .. }),
            format!("{}_x=1", "a".repeat(65)).into_bytes() => Err(Unreadable { why: "unknown caveat", .. }),
        ],
        |bytes| plannt_l402::Caveat::parse(bytes),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Credential::parse

#[test]
fn credential_parse_refuses_hostile_values() {
    let t = real_b64_with_std_chars();
    let p = hex_preimage();
    let n = run(
        "Credential::parse",
        table![String => Result<Credential, CredentialError>;
            "" => Err(CredentialError::NotL402),
            "   " => Err(CredentialError::NotL402),
            "\0" => Err(CredentialError::NotL402),
            format!("Bearer {t}:{p}") => Err(CredentialError::NotL402),
            "Basic dXNlcjpwYXNz" => Err(CredentialError::NotL402),
            format!("L402{t}:{p}") => Err(CredentialError::NotL402),
            format!("L402,{t}:{p}") => Err(CredentialError::NotL402),
            format!("L402:{t}:{p}") => Err(CredentialError::NotL402),
            format!("L402\u{a0}{t}:{p}") => Err(CredentialError::NotL402),
            format!("L402\n{t}:{p}") => Err(CredentialError::NotL402),
            format!("L40 {t}:{p}") => Err(CredentialError::NotL402),
            format!("L4022 {t}:{p}") => Err(CredentialError::NotL402),
            format!("Ｌ４０２ {t}:{p}") => Err(CredentialError::NotL402),
            format!("🔑 {t}:{p}") => Err(CredentialError::NotL402),
            format!("Token {t}:{p}") => Err(CredentialError::NotL402),
            "L402" => Err(CredentialError::NoMacaroon),
            "l402" => Err(CredentialError::NoMacaroon),
            "LSAT" => Err(CredentialError::NoMacaroon),
            "  L402 \t " => Err(CredentialError::NoMacaroon),
            format!("L402 :{p}") => Err(CredentialError::NoMacaroon),
            format!("L402  \t :{p}") => Err(CredentialError::NoMacaroon),
            format!("L402 {t}") => Err(CredentialError::NoColon),
            format!("L402 {t};{p}") => Err(CredentialError::NoColon),
            format!("L402 {t} {p}") => Err(CredentialError::NoColon),
            format!("L402 macaroon=\"{t}\", invoice=\"lnbc1\"") => Err(CredentialError::NoColon),
            format!("L402 {t}:") => Err(CredentialError::BadPreimage),
            format!("L402 {t}:ab") => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", &p[..63]) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", &p[..62]) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{p}0") => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{p}00") => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", "zz".repeat(32)) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:0x{}", &p[..62]) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", insert_at_middle(&p, " ")) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}é", &p[..62]) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", "２".repeat(64)) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", "\0".repeat(64)) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{}", plannt_l402::base64_encode(&PREIMAGE)) => Err(CredentialError::BadPreimage),
            format!("L402 {t}:{p}:{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 a:b:{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 ünïcødé:{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 \0\0\0\0:{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 {}:{p}", insert_at_middle(&t, " ")) => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 {}-:{p}", t.trim_end_matches('=')) => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 \"{t}\":{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            format!("L402 {t},:{p}") => Err(CredentialError::Macaroon { index: 2, error: MacaroonError::Empty }),
            format!("L402 ,{t}:{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::Empty }),
            format!("L402 {t},,{t}:{p}") => Err(CredentialError::Macaroon { index: 2, error: MacaroonError::Empty }),
            format!("L402 AAAA:{p}") => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::UnsupportedVersion(0) }),
            format!("L402 {t},Ag==:{p}") => Err(CredentialError::Macaroon { index: 2, error: MacaroonError::Truncated }),
            format!("L402 {t},{t},{t},AQ==:{p}") => Err(CredentialError::Macaroon { index: 4, error: MacaroonError::UnsupportedVersion(1) }),
            format!("L402 {}:{p}", [t.as_str(); 9].join(",")) => Err(CredentialError::TooManyMacaroons),
            format!("L402 {}:{p}", vec!["AgE="; 3000].join(",")) => Err(CredentialError::TooManyMacaroons),
            format!("L402 {}:{p}", ",".repeat(5000)) => Err(CredentialError::TooManyMacaroons),
            format!("L402 {}:{p}", "A".repeat(1 << 20)) => Err(CredentialError::TooLong(_)),
            format!("L402 {}:{p}", vec![t.as_str(); 2000].join(",")) => Err(CredentialError::TooLong(_)),
            format!("{}L402 {t}:{p}", " ".repeat(MAX_HEADER_LEN)) => Err(CredentialError::TooLong(_)),
        ],
        |value| Credential::parse(value),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Credential::from_headers

fn hv(values: &[&[u8]]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.to_vec()).collect()
}

#[test]
fn credential_from_headers_refuses_hostile_header_sets() {
    let t = real_b64_with_std_chars();
    let p = hex_preimage();
    let good = format!("L402 {t}:{p}");
    let other_good = format!("L402 {}:{p}", real_b64());
    let big_bearer = format!("Bearer {}", "x".repeat(1 << 20));
    let big_l402 = format!("L402 {}:{p}", "A".repeat(1 << 20));
    let bearer_many: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("Bearer t{i}").into_bytes())
        .collect();
    let l402_many: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("L402 {t}:{:064x}", i).into_bytes())
        .collect();
    let bare_many: Vec<Vec<u8>> = vec![b"L402".to_vec(); 5000];
    let mut bearer_then_good = bearer_many.clone();
    bearer_then_good.push(good.clone().into_bytes());
    let non_utf8_l402 = append(b"L402 ".to_vec(), &[0xff, 0xfe, b':']);

    type Out = Result<Option<Credential>, CredentialError>;
    let n = run(
        "Credential::from_headers",
        table![Vec<Vec<u8>> => Out;
            Vec::<Vec<u8>>::new() => Ok(None),
            hv(&[b""]) => Ok(None),
            hv(&[b"", b"", b""]) => Ok(None),
            hv(&[b"   "]) => Ok(None),
            hv(&[b"\0\0\0"]) => Ok(None),
            hv(&[b"Bearer abc"]) => Ok(None),
            hv(&[b"Digest username=\"L402\", realm=\"LSAT\""]) => Ok(None),
            hv(&[b"\xff\xfe\xfd"]) => Ok(None),
            hv(&[b"Bearer \xff"]) => Ok(None),
            hv(&[b"L40\xff"]) => Ok(None),
            hv(&["Ｌ４０２ x:y".as_bytes()]) => Ok(None),
            bearer_many.clone() => Ok(None),
            hv(&[&non_utf8_l402]) => Err(CredentialError::NotText),
            hv(&[b"L402\x80"]) => Err(CredentialError::NotText),
            hv(&[b"lsat \xc3\x28"]) => Err(CredentialError::NotText),
            hv(&[b"Bearer x", b"LSAT \xff", good.as_bytes()]) => Err(CredentialError::NotText),
            hv(&[b"L402"]) => Err(CredentialError::NoMacaroon),
            hv(&[b"L402 "]) => Err(CredentialError::NoMacaroon),
            hv(&[b"Bearer x", b"lsat"]) => Err(CredentialError::NoMacaroon),
            bare_many.clone() => Err(CredentialError::NoMacaroon),
            hv(&[big_bearer.as_bytes()]) => Ok(None),
            hv(&[big_l402.as_bytes()]) => Err(CredentialError::TooLong(_)),
            hv(&[good.as_bytes(), big_bearer.as_bytes()]) => Ok(Some(_)),
            hv(&[&vec![0xff; 1 << 20]]) => Ok(None),
            hv(&[good.as_bytes(), other_good.as_bytes()]) => Err(CredentialError::Conflicting),
            hv(&[good.as_bytes(), format!("L402 {t}:{}", "00".repeat(32)).as_bytes()]) => Err(CredentialError::Conflicting),
            l402_many.clone() => Err(CredentialError::Conflicting),
            hv(&[format!("L402 {t}").as_bytes()]) => Err(CredentialError::NoColon),
            hv(&[b"Bearer x", format!("L402 {t}:abc").as_bytes()]) => Err(CredentialError::BadPreimage),
            hv(&[format!("LSAT {t}:{}", &p[..63]).as_bytes()]) => Err(CredentialError::BadPreimage),
            hv(&[format!("L402 a:b:{p}").as_bytes()]) => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            hv(&[format!("L402 \0:{p}").as_bytes()]) => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::NotBase64 }),
            hv(&[format!("l402 ,:{p}").as_bytes()]) => Err(CredentialError::Macaroon { index: 1, error: MacaroonError::Empty }),
            hv(&[format!("L402 {}:{p}", vec!["AgE="; 3000].join(",")).as_bytes()]) => Err(CredentialError::TooManyMacaroons),
            // Hostile neighbours do not hide a good credential.
            hv(&[b"Basic x", b"\xff\xfe", good.as_bytes(), b"Bearer \0"]) => Ok(Some(Credential { scheme: Scheme::L402, .. })),
            hv(&[good.as_bytes(), b"\xff L402"]) => Ok(Some(_)),
            bearer_then_good.clone() => Ok(Some(_)),
            hv(&[format!("lsat {t}:{}", p.to_uppercase()).as_bytes()]) => Ok(Some(Credential { scheme: Scheme::Lsat, preimage, .. })) if *preimage == Preimage::new(PREIMAGE),
        ],
        |values| Credential::from_headers(values.iter().map(Vec::as_slice)),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Challenge::parse

fn sv(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn challenge_parse_refuses_hostile_header_sets() {
    let t = real_b64_with_std_chars();
    let good = format!("L402 macaroon=\"{t}\", invoice=\"lnbcrt1\"");
    let lsat = format!("LSAT macaroon=\"{t}\", invoice=\"lnbcrt2\"");
    let huge = format!("{good}{}", " ".repeat(1 << 20));
    let many_bearers = "Bearer realm=\"x\", ".repeat(1000);
    let many_values: Vec<String> = (0..5000)
        .map(|i| format!("Bearer realm=\"r{i}\""))
        .collect();

    let n = run(
        "Challenge::parse",
        table![Vec<String> => Result<Challenge, ChallengeError>;
            Vec::<String>::new() => Err(ChallengeError::Missing),
            sv(&[""]) => Err(ChallengeError::Missing),
            sv(&["", " ", "\t"]) => Err(ChallengeError::Missing),
            sv(&["Bearer realm=\"x\""]) => Err(ChallengeError::Missing),
            sv(&["Bearer realm=\"L402 macaroon=x, invoice=y\""]) => Err(ChallengeError::Missing),
            sv(&["Bearer L402=x, LSAT=y"]) => Err(ChallengeError::Missing),
            sv(&["L402x macaroon=a, invoice=b"]) => Err(ChallengeError::Missing),
            sv(&["Ｌ４０２ macaroon=a, invoice=b"]) => Err(ChallengeError::Missing),
            sv(&["ñññ ☃☃☃ 🍪"]) => Err(ChallengeError::Missing),
            sv(&["\"\"\"\""]) => Err(ChallengeError::Missing),
            sv(&["=,=,=,,,"]) => Err(ChallengeError::Missing),
            sv(&["\0\0\0"]) => Err(ChallengeError::Missing),
            sv(&[&many_bearers]) => Err(ChallengeError::Missing),
            many_values.clone() => Err(ChallengeError::Missing),
            sv(&["L402"]) => Err(ChallengeError::NoMacaroon),
            sv(&["l402 ,,,,"]) => Err(ChallengeError::NoMacaroon),
            sv(&["L402 macaroon"]) => Err(ChallengeError::NoMacaroon),
            sv(&["L402 invoice=\"lnbc1\""]) => Err(ChallengeError::NoMacaroon),
            sv(&["L402 macaroons=\"AgE\", invoice=\"lnbc1\""]) => Err(ChallengeError::NoMacaroon),
            sv(&[&format!("Bearer macaroon=\"{t}\", L402 invoice=\"lnbc1\"")]) => Err(ChallengeError::NoMacaroon),
            sv(&[&format!("L402 macaroon=\"{t}\"")]) => Err(ChallengeError::NoInvoice),
            sv(&[&format!("L402 macaroon=\"{t}\", invoice=\"\"")]) => Err(ChallengeError::NoInvoice),
            sv(&[&format!("L402 macaroon=\"{t}\", invoice=a\"")]) => Err(ChallengeError::BadInvoice),
            sv(&[&format!("L402 macaroon=\"{t}\", invoice=\"a\\\\\"")]) => Err(ChallengeError::BadInvoice),
            sv(&[&format!("L402 macaroon=\"{t}\", invoice=\"lnbc 1\"")]) => Err(ChallengeError::BadInvoice),
            sv(&[&format!("L402 macaroon=\"{t}\", invoice=\"lnbc\u{0}1\"")]) => Err(ChallengeError::BadInvoice),
            sv(&[&format!("L402 macaroon={t}, invoice=")]) => Err(ChallengeError::NoInvoice),
            sv(&[&format!("L402 MACAROON={t}")]) => Err(ChallengeError::NoInvoice),
            sv(&[&format!("L402 macaroon=\"{t}\", invoices=\"lnbc1\"")]) => Err(ChallengeError::NoInvoice),
            sv(&["L402 macaroon=\"\", invoice=\"lnbc1\""]) => Err(ChallengeError::Macaroon(MacaroonError::Empty)),
            sv(&["L402 macaroon=, invoice=lnbc1"]) => Err(ChallengeError::Macaroon(MacaroonError::Empty)),
            sv(&["L402 macaroon=\"!!!!\", invoice=\"lnbc1\""]) => Err(ChallengeError::Macaroon(MacaroonError::NotBase64)),
            sv(&["L402 macaroon=\"\\\"\", invoice=\"lnbc1\""]) => Err(ChallengeError::Macaroon(MacaroonError::NotBase64)),
            sv(&[&format!("L402 macaroon=\"{}\", invoice=\"lnbc1\"", insert_at_middle(&t, "é"))]) => Err(ChallengeError::Macaroon(MacaroonError::NotBase64)),
            sv(&["LSAT macaroon=\"AAAA\", invoice=\"lnbc1\""]) => Err(ChallengeError::Macaroon(MacaroonError::UnsupportedVersion(0))),
            sv(&[&format!("L402 token=\"{}\", invoice=\"lnbc1\"", b64(&real_bin()[..50]))]) => Err(ChallengeError::Macaroon(MacaroonError::Truncated)),
            sv(&[&format!("L402 macaroon=\"{t}")]) => Err(ChallengeError::UnterminatedQuote),
            sv(&[&format!("L402 macaroon=\"{t}\", invoice=\"lnbc1")]) => Err(ChallengeError::UnterminatedQuote),
            sv(&["L402 macaroon=\"\\"]) => Err(ChallengeError::UnterminatedQuote),
            sv(&["L402 macaroon=\"\\\""]) => Err(ChallengeError::UnterminatedQuote),
            sv(&["Bearer realm=\"☃"]) => Err(ChallengeError::UnterminatedQuote),
            sv(&[&huge]) => Err(ChallengeError::TooLong(_)),
            sv(&[&"L402 ".repeat(MAX_HEADER_LEN)]) => Err(ChallengeError::TooLong(_)),
            // The first error wins when nothing is usable.
            sv(&["L402 macaroon=\"\", invoice=\"i\"", "L402"]) => Err(ChallengeError::Macaroon(MacaroonError::Empty)),
            // Hostile neighbours do not hide a usable challenge.
            sv(&[&huge, &good]) => Ok(Challenge { scheme: Scheme::L402, .. }),
            sv(&["L402 macaroon=\"", &good]) => Ok(Challenge { scheme: Scheme::L402, .. }),
            sv(&["L402 macaroon=\"!!\", invoice=\"x\"", &lsat]) => Ok(Challenge { scheme: Scheme::Lsat, .. }),
            sv(&[&format!("{many_bearers}{good}")]) => Ok(Challenge { scheme: Scheme::L402, .. }),
        ],
        |values| Challenge::parse(values.iter().map(String::as_str)),
    );
    assert!(n >= 30, "{n}");
}

// ---------------------------------------------------------------------------------------------
// RootKey::from_hex

#[test]
fn root_key_from_hex_refuses_anything_but_64_hex_characters() {
    let k = "0123456789abcdef".repeat(4);
    type Out = Result<RootKey, KeyError>;
    let n = run(
        "RootKey::from_hex",
        table![String => Out;
            "" => Err(KeyError::BadHex(0)),
            "   \n" => Err(KeyError::BadHex(0)),
            "a" => Err(KeyError::BadHex(1)),
            "ab" => Err(KeyError::BadHex(2)),
            "-1" => Err(KeyError::BadHex(2)),
            k[..62].to_string() => Err(KeyError::BadHex(62)),
            k[..63].to_string() => Err(KeyError::BadHex(63)),
            format!("{k}0") => Err(KeyError::BadHex(65)),
            format!("{k}00") => Err(KeyError::BadHex(66)),
            k.repeat(2) => Err(KeyError::BadHex(128)),
            "zz".repeat(32) => Err(KeyError::BadHex(64)),
            "g".repeat(64) => Err(KeyError::BadHex(64)),
            ".".repeat(64) => Err(KeyError::BadHex(64)),
            format!("0x{}", &k[..62]) => Err(KeyError::BadHex(64)),
            format!("0x{k}") => Err(KeyError::BadHex(66)),
            format!("+{}", &k[..63]) => Err(KeyError::BadHex(64)),
            insert_at_middle(&k, " ") => Err(KeyError::BadHex(65)),
            insert_at_middle(&k, "\n") => Err(KeyError::BadHex(65)),
            insert_at_middle(&k, "\t") => Err(KeyError::BadHex(65)),
            insert_at_middle(&k[..62], ":") => Err(KeyError::BadHex(63)),
            k.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":") => Err(KeyError::BadHex(95)),
            format!("{}-{}", &k[..32], &k[32..]) => Err(KeyError::BadHex(65)),
            "é".repeat(32) => Err(KeyError::BadHex(64)),
            format!("{}é", &k[..62]) => Err(KeyError::BadHex(64)),
            "０".repeat(64) => Err(KeyError::BadHex(192)),
            "\0".repeat(64) => Err(KeyError::BadHex(64)),
            format!("{k}\0") => Err(KeyError::BadHex(65)),
            format!("\u{feff}{k}") => Err(KeyError::BadHex(67)),
            "🔑".repeat(16) => Err(KeyError::BadHex(64)),
            plannt_l402::base64_encode(&[0x11; 32]) => Err(KeyError::BadHex(44)),
            "a".repeat(1 << 20) => Err(KeyError::BadHex(1_048_576)),
            format!("PLANNT_ROOT_KEY={k}") => Err(KeyError::BadHex(80)),
            format!("\"{k}\"") => Err(KeyError::BadHex(66)),
            // Either case, surrounded by ASCII or Unicode whitespace, is a key.
            k.to_uppercase() => Ok(RootKey { .. }),
            format!(" \t{k}\r\n") => Ok(RootKey { .. }),
            format!("\u{a0}{k}\u{3000}") => Ok(RootKey { .. }),
        ],
        |text| RootKey::from_hex(text),
    );
    assert!(n >= 30, "{n}");
}
