//! Kept answers, sealed: the answer of a paid request, encrypted under a key only the same
//! credential presenting the same request can derive again.
//!
//! - The **request digest** is SHA-256 over the method, the canonical path and query, and the
//!   SHA-256 of the request body ([`request_digest`]).
//! - The **key** is `HMAC-SHA256(secret, "plannt kept answer v1" || digest)`, `secret` the
//!   credential's secret: the preimage for L402 and MPP; for x402, which presents no preimage, a
//!   secret the gateway derives from its root key and the paid invoice (see
//!   [`Paywall`](crate::Paywall)).
//! - The **seal** is ChaCha20-Poly1305, over the answer and its keep-until, with the payment
//!   hash and the request digest as associated data. The key is already one per credential and
//!   request; the nonce (a per-process random prefix and a counter) never repeats within a
//!   process either, should the same key seal twice (a commit a failover forgot).
//!
//! So a copy of the store reveals no answer (the preimage is never stored), another request
//! derives another key and fails to open, and an entry changed by one bit fails authentication.
//! Key material is zeroized after use. No I/O here.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use plannt_l402::PaymentHash;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The first byte of a sealed answer: its format.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const LABEL: &[u8] = b"plannt kept answer v1";

/// What one request asks for: SHA-256 over its method, canonical path and query, and the
/// SHA-256 of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDigest(pub [u8; 32]);

/// The digest of a request.
pub fn request_digest(method: &str, path_and_query: &str, body_sha256: &[u8; 32]) -> RequestDigest {
    let mut sha = Sha256::new();
    sha.update(b"plannt request v1\0");
    sha.update(method.as_bytes());
    sha.update(b"\0");
    sha.update(path_and_query.as_bytes());
    sha.update(b"\0");
    sha.update(body_sha256);
    RequestDigest(sha.finalize().into())
}

/// The secret an x402 credential's answer is sealed under: `HMAC-SHA256(gateway secret,
/// "plannt x402 bearer v1" || invoice)`. An x402 payload names a paid invoice and carries no
/// preimage: whoever holds it holds the credential, as with a preimage.
pub fn bearer_secret(gateway: &[u8; 32], invoice: &str) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(gateway).expect("any key length");
    mac.update(b"plannt x402 bearer v1");
    mac.update(invoice.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// An answer as kept: status, headers in order (repeated names repeated), body, and until when
/// it may be given again (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercase.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Until when it is given again.
    pub until: u64,
}

/// Why a sealed answer does not open. Deliberately vague: another request, another credential
/// and a tampered entry look the same, and all are refused as spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the kept answer does not open for this credential and request (another request, or a damaged entry)"
)]
pub struct OpenError;

fn key(secret: &[u8; 32], digest: &RequestDigest) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(LABEL);
    mac.update(&digest.0);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn aad(hash: &PaymentHash, digest: &RequestDigest) -> [u8; 64] {
    let mut aad = [0u8; 64];
    aad[..32].copy_from_slice(&hash.0);
    aad[32..].copy_from_slice(&digest.0);
    aad
}

fn encode(answer: &KeptAnswer) -> Zeroizing<Vec<u8>> {
    let mut out = Vec::with_capacity(
        14 + answer.body.len()
            + answer
                .headers
                .iter()
                .map(|(n, v)| 6 + n.len() + v.len())
                .sum::<usize>(),
    );
    out.extend_from_slice(&answer.until.to_be_bytes());
    out.extend_from_slice(&answer.status.to_be_bytes());
    out.extend_from_slice(&(answer.headers.len() as u32).to_be_bytes());
    for (name, value) in &answer.headers {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&answer.body);
    Zeroizing::new(out)
}

fn decode(mut bytes: &[u8]) -> Option<KeptAnswer> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    let until = u64::from_be_bytes(take(&mut bytes, 8)?.try_into().ok()?);
    let status = u16::from_be_bytes(take(&mut bytes, 2)?.try_into().ok()?);
    let count = u32::from_be_bytes(take(&mut bytes, 4)?.try_into().ok()?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let n = u16::from_be_bytes(take(&mut bytes, 2)?.try_into().ok()?) as usize;
        let name = String::from_utf8(take(&mut bytes, n)?.to_vec()).ok()?;
        let n = u32::from_be_bytes(take(&mut bytes, 4)?.try_into().ok()?) as usize;
        headers.push((name, take(&mut bytes, n)?.to_vec()));
    }
    Some(KeptAnswer {
        status,
        headers,
        body: bytes.to_vec(),
        until,
    })
}

/// Seals `answer` for the credential whose secret is `secret`, paying `hash`, and the request
/// `digest`.
pub fn seal(
    secret: &[u8; 32],
    hash: &PaymentHash,
    digest: &RequestDigest,
    answer: &KeptAnswer,
) -> Vec<u8> {
    let key = key(secret, digest);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key[..]));
    // Never repeated within the process; the key is already one per credential and request.
    let nonce: [u8; NONCE_LEN] = crate::unique::unique12();
    let plain = encode(answer);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad(hash, digest),
            },
        )
        .expect("ChaCha20-Poly1305 seals any message that fits in memory");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] made, for the same secret, payment hash and request digest.
pub fn open(
    secret: &[u8; 32],
    hash: &PaymentHash,
    digest: &RequestDigest,
    sealed: &[u8],
) -> Result<KeptAnswer, OpenError> {
    let (&version, rest) = sealed.split_first().ok_or(OpenError)?;
    if version != VERSION {
        return Err(OpenError);
    }
    let (nonce, body) = rest.split_at_checked(NONCE_LEN).ok_or(OpenError)?;
    let key = key(secret, digest);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key[..]));
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &aad(hash, digest),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError)?;
    decode(&plain).ok_or(OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> KeptAnswer {
        KeptAnswer {
            status: 201,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("set-cookie".into(), b"a=1".to_vec()),
                ("set-cookie".into(), b"b=2".to_vec()),
            ],
            body: b"{\"answer\":42}".to_vec(),
            until: 1_800_000_000,
        }
    }

    fn digest(path: &str) -> RequestDigest {
        request_digest("POST", path, &Sha256::digest(b"question").into())
    }

    #[test]
    fn a_sealed_answer_opens_byte_for_byte_for_the_same_credential_and_request() {
        let hash = PaymentHash([3; 32]);
        let sealed = seal(&[1; 32], &hash, &digest("/a?x=1"), &answer());
        assert_eq!(
            open(&[1; 32], &hash, &digest("/a?x=1"), &sealed),
            Ok(answer())
        );
        // Nothing of the body shows in the sealed bytes.
        assert!(!sealed.windows(6).any(|w| w == b"answer"));
        // A random nonce: the same answer seals differently each time.
        assert_ne!(sealed, seal(&[1; 32], &hash, &digest("/a?x=1"), &answer()));
    }

    #[test]
    fn another_request_secret_hash_or_any_flipped_bit_does_not_open() {
        let hash = PaymentHash([3; 32]);
        let sealed = seal(&[1; 32], &hash, &digest("/a?x=1"), &answer());
        assert_eq!(
            open(&[2; 32], &hash, &digest("/a?x=1"), &sealed),
            Err(OpenError)
        );
        assert_eq!(
            open(&[1; 32], &hash, &digest("/a?x=2"), &sealed),
            Err(OpenError)
        );
        assert_eq!(
            open(&[1; 32], &PaymentHash([4; 32]), &digest("/a?x=1"), &sealed),
            Err(OpenError)
        );
        let other_body = request_digest("POST", "/a?x=1", &Sha256::digest(b"other").into());
        assert_eq!(open(&[1; 32], &hash, &other_body, &sealed), Err(OpenError));
        let other_method = request_digest("PUT", "/a?x=1", &Sha256::digest(b"question").into());
        assert_eq!(
            open(&[1; 32], &hash, &other_method, &sealed),
            Err(OpenError)
        );
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert_eq!(
                open(&[1; 32], &hash, &digest("/a?x=1"), &tampered),
                Err(OpenError),
                "byte {i}"
            );
        }
        assert_eq!(
            open(&[1; 32], &hash, &digest("/a?x=1"), &[]),
            Err(OpenError)
        );
        assert_eq!(
            open(&[1; 32], &hash, &digest("/a?x=1"), &sealed[..20]),
            Err(OpenError)
        );
    }

    #[test]
    fn the_digest_separates_its_fields() {
        let body: [u8; 32] = Sha256::digest(b"").into();
        assert_ne!(
            request_digest("GET", "/ab", &body),
            request_digest("GET/", "ab", &body)
        );
    }
}
