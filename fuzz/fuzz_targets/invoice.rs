//! `decode_invoice` on arbitrary text (the input, read as lossy UTF-8): the invoice a client is
//! handed in a challenge, or `plannt decode` and `plannt wallet pay` are given.
//!
//! Checks that it never panics, and that a decoded invoice's `bolt11` decodes again to an equal
//! value, with `expires_at() >= created_at`.
//!
//! A mutated invoice almost never gets past the bech32 checksum, and never past the signature.
//! So the same checks also run on a second invoice made from the input: its human-readable part
//! and its data part as written (any payee field given the harness's own key), then a signature
//! by that key over the hash `lightning-invoice` computes for them, then the checksum. That copy
//! reaches the field parsers, the semantic checks, the payment-secret-without-features path and
//! the round trip with whatever the fuzzer wrote in the fields.
#![no_main]

use std::sync::OnceLock;

use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use libfuzzer_sys::fuzz_target;
use lightning_invoice::SignedRawBolt11Invoice;
use plannt_lightning::decode_invoice;

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// 5-bit groups of the signature (65 bytes) and of the checksum.
const SIGNATURE_LEN: usize = 104;
const CHECKSUM_LEN: usize = 6;
/// The payee field: type `n` (19), 53 groups long (a 33-byte public key).
const PAYEE_TAG: u8 = 19;
const PAYEE_LEN: usize = 53;
/// The timestamp that opens the data part.
const TIMESTAMP_LEN: usize = 7;

struct Signer {
    secp: Secp256k1<All>,
    key: SecretKey,
    payee: Vec<u8>,
    placeholder: Vec<u8>,
}

fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let secp = Secp256k1::new();
        let key = SecretKey::from_slice(&[0x11; 32]).expect("a valid key");
        let payee = to_groups(&PublicKey::from_secret_key(&secp, &key).serialize());
        let placeholder = sign(&secp, &key, [0x42; 32]);
        Signer {
            secp,
            key,
            payee,
            placeholder,
        }
    })
}

/// Bytes as 5-bit groups, the last one padded with zero bits.
fn to_groups(bytes: &[u8]) -> Vec<u8> {
    let mut groups = Vec::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            groups.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        groups.push(((acc << (5 - bits)) & 31) as u8);
    }
    groups
}

/// A BOLT11 signature of `hash`: compact signature then recovery id, as 104 groups.
fn sign(secp: &Secp256k1<All>, key: &SecretKey, hash: [u8; 32]) -> Vec<u8> {
    let signature = secp.sign_ecdsa_recoverable(&Message::from_digest(hash), key);
    let (recovery_id, compact) = signature.serialize_compact();
    let mut bytes = compact.to_vec();
    bytes.push(recovery_id.to_i32() as u8);
    to_groups(&bytes)
}

/// The bech32 (not bech32m) checksum of a lowercase human-readable part and data groups.
fn checksum(hrp: &str, data: &[u8]) -> [u8; CHECKSUM_LEN] {
    const GENERATOR: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk = 1u32;
    let mut step = |value: u8| {
        let top = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ u32::from(value);
        for (i, g) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    };
    hrp.bytes().for_each(|c| step(c >> 5));
    step(0);
    hrp.bytes().for_each(|c| step(c & 31));
    data.iter().for_each(|&g| step(g));
    (0..CHECKSUM_LEN).for_each(|_| step(0));
    chk ^= 1;
    let mut out = [0; CHECKSUM_LEN];
    for (i, group) in out.iter_mut().enumerate() {
        *group = ((chk >> (5 * (CHECKSUM_LEN - 1 - i))) & 31) as u8;
    }
    out
}

fn encode(hrp: &str, data: &[u8], upper: bool) -> String {
    let mut text = String::with_capacity(hrp.len() + 1 + data.len() + CHECKSUM_LEN);
    text.push_str(hrp);
    text.push('1');
    for &g in data.iter().chain(&checksum(hrp, data)) {
        text.push(CHARSET[g as usize] as char);
    }
    if upper {
        text.to_ascii_uppercase()
    } else {
        text
    }
}

/// The input as a validly signed invoice: its human-readable part and data part (less the last
/// 110 groups, the signature and checksum, when it is that long), the payee field if any set to
/// the signer's key, signed by that key, with a fresh checksum. `None` when the input is not
/// bech32-shaped or `lightning-invoice` cannot read the fields.
fn signed_copy(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("lightning:")
        .or_else(|| text.strip_prefix("LIGHTNING:"))
        .unwrap_or(text);
    let separator = text.rfind('1')?;
    let (hrp, rest) = (&text[..separator], &text[separator + 1..]);
    if hrp.is_empty() || !hrp.bytes().all(|b| (33..=126).contains(&b)) {
        return None;
    }
    let upper = text.bytes().any(|b| b.is_ascii_uppercase());
    if upper && text.bytes().any(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let hrp = hrp.to_ascii_lowercase();
    let mut data = rest
        .bytes()
        .map(|c| {
            CHARSET
                .iter()
                .position(|&x| x == c.to_ascii_lowercase())
                .map(|p| p as u8)
        })
        .collect::<Option<Vec<u8>>>()?;
    if data.len() >= TIMESTAMP_LEN + SIGNATURE_LEN + CHECKSUM_LEN {
        data.truncate(data.len() - SIGNATURE_LEN - CHECKSUM_LEN);
    }
    let signer = signer();
    let mut i = TIMESTAMP_LEN;
    while i + 3 <= data.len() {
        let len = usize::from(data[i + 1]) * 32 + usize::from(data[i + 2]);
        if i + 3 + len > data.len() {
            break;
        }
        if data[i] == PAYEE_TAG && len == PAYEE_LEN {
            data[i + 3..i + 3 + len].copy_from_slice(&signer.payee);
        }
        i += 3 + len;
    }
    let content = data.len();
    data.extend_from_slice(&signer.placeholder);
    let unsigned: SignedRawBolt11Invoice = encode(&hrp, &data, false).parse().ok()?;
    let signature = sign(&signer.secp, &signer.key, *unsigned.signable_hash());
    data.truncate(content);
    data.extend_from_slice(&signature);
    Some(encode(&hrp, &data, upper))
}

fn check(text: &str) {
    let Ok(decoded) = decode_invoice(text) else {
        return;
    };
    assert!(
        decoded.expires_at() >= decoded.created_at,
        "expires before it is created: {decoded:?}"
    );
    let again = decode_invoice(&decoded.bolt11)
        .unwrap_or_else(|e| panic!("our own bolt11 does not decode: {e}: {decoded:?}"));
    assert_eq!(again, decoded, "the bolt11 decodes to another invoice");
    let _ = decoded.amount_sats();
    assert!(decoded.is_expired_at(decoded.expires_at()));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
    if let Some(copy) = signed_copy(&text) {
        check(&copy);
    }
});
