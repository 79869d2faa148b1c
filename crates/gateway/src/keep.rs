//! Kept answers, sealed: the answer of a paid request, encrypted under a key only the same
//! credential presenting the same request can derive again.
//!
//! - The **request digest** is SHA-256 over the method, the canonical path and query, and the
//!   SHA-256 of the request body ([`request_digest`]).
//! - The **key** is `HMAC-SHA256(secret, "plannt kept answer v1" || digest)`, `secret` the
//!   credential's secret: the preimage for L402 and MPP; for x402, which presents no preimage, a
//!   secret the gateway derives from its root key and the paid invoice (see
//!   [`Paywall`](crate::Paywall)).
//! - The **seal** is ChaCha20-Poly1305 (RFC 8439, ring's implementation), over the answer and its keep-until, with the payment
//!   hash and the request digest as associated data. The key is already one per credential and
//!   request; the nonce (a per-process random prefix and a counter) never repeats within a
//!   process either, should the same key seal twice (a commit a failover forgot).
//!
//! So a copy of the store reveals no answer (the preimage is never stored), another request
//! derives another key and fails to open, and an entry changed by one bit fails authentication.
//! Key material is zeroized after use. No I/O here.

use hmac::{Hmac, Mac};
use plannt_l402::PaymentHash;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
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

fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"))
}

/// The answer's plain bytes, appended to `out`.
fn encode(answer: &KeptAnswer, out: &mut Vec<u8>) {
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
}

/// How many bytes [`encode`] appends.
fn encoded_len(answer: &KeptAnswer) -> usize {
    14 + answer.body.len()
        + answer
            .headers
            .iter()
            .map(|(n, v)| 6 + n.len() + v.len())
            .sum::<usize>()
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
    // Never repeated within the process; the key is already one per credential and request.
    let nonce: [u8; NONCE_LEN] = crate::unique::unique12();
    // One buffer: version, nonce, then the answer sealed in place and its tag.
    let head = 1 + NONCE_LEN;
    let tag_len = CHACHA20_POLY1305.tag_len();
    let mut out = Vec::with_capacity(head + encoded_len(answer) + tag_len);
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    encode(answer, &mut out);
    let tag = cipher(&key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(hash, digest)),
            &mut out[head..],
        )
        .expect("ChaCha20-Poly1305 seals any message that fits in memory");
    out.extend_from_slice(tag.as_ref());
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
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
    let key = key(secret, digest);
    let mut buffer = Zeroizing::new(body.to_vec());
    let plain = cipher(&key)
        .open_in_place(nonce, Aad::from(aad(hash, digest)), &mut buffer[..])
        .map_err(|_| OpenError)?;
    decode(plain).ok_or(OpenError)
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
    fn the_seal_is_rfc_8439_chacha20_poly1305() {
        // RFC 8439, 2.8.2: entries sealed before and after a change of implementation open alike.
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let tag = cipher(&key)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut text,
            )
            .unwrap();
        assert_eq!(hex::encode(&text[..16]), "d31a8d34648e60db7b86afbc53ef7ec2");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "1ae10b594f09e26a7e902ecbd0600691"
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
