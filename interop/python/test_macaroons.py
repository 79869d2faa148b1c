"""PyPI pymacaroons against Plannt's macaroons, in both directions.

pymacaroons checks the macaroons `plannt-l402` mints (layout, caveats, signature under the raw
32-byte root key), and `plannt-l402` checks macaroons that pymacaroons mints with Aperture's
identifier layout. Plannt is driven through `crates/l402/examples/interop.rs`; its path comes
from PLANNT_INTEROP_BIN (default `target/debug/examples/interop`, relative to the repository).
"""

import base64
import hashlib
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest
from pymacaroons import MACAROON_V2, Macaroon, Verifier
from pymacaroons.exceptions import (
    MacaroonInvalidSignatureException,
    MacaroonVerificationFailedException,
)
from pymacaroons.serializers import BinarySerializer

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("PLANNT_INTEROP_BIN", "target/debug/examples/interop"))
if not BIN.is_absolute():
    BIN = REPO / BIN

ROOT_KEY = bytes(range(32))
PREIMAGE = bytes([0x2A] * 32)
PAYMENT_HASH = hashlib.sha256(PREIMAGE).digest()
VALID_UNTIL = int(time.time()) + 3600


def interop(*args: str) -> subprocess.CompletedProcess:
    if not BIN.is_file():
        pytest.fail(f"{BIN} is missing: build it with `cargo build -p plannt-l402 --example interop`")
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)


def plannt_mint(route: str = "demo") -> str:
    out = interop("mint", ROOT_KEY.hex(), route, PAYMENT_HASH.hex(), str(VALID_UNTIL))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def plannt_verify(macaroon: str, route: str = "demo", key: bytes = ROOT_KEY):
    out = interop("verify", key.hex(), macaroon, PREIMAGE.hex(), route)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def aperture_identifier(payment_hash: bytes) -> bytes:
    """Aperture's 66 bytes: u16 version 0, payment hash, token id."""
    return struct.pack(">H", 0) + payment_hash + os.urandom(32)


# --- Plannt mints, pymacaroons reads and verifies -------------------------------------------


def test_header_form_is_standard_padded_base64_of_v2_binary():
    text = plannt_mint()
    raw = base64.b64decode(text, validate=True)  # standard alphabet, padded, nothing else
    assert base64.b64encode(raw).decode() == text
    assert raw[0] == MACAROON_V2


def test_pymacaroons_reads_our_macaroon():
    text = plannt_mint()
    raw = base64.b64decode(text)
    # pymacaroons decodes any text as URL-safe base64 (a `'_' or '-' in s` slip in its utils);
    # Python's URL-safe decoder still takes `+` and `/`, so our standard form reads the same.
    m = BinarySerializer().deserialize_raw(raw)
    assert Macaroon.deserialize(text, serializer=BinarySerializer()).signature == m.signature

    assert m.version == MACAROON_V2
    ident = m.identifier_bytes
    assert len(ident) == 66
    assert struct.unpack(">H", ident[:2]) == (0,)
    assert ident[2:34] == PAYMENT_HASH
    # The location is the minting key's id: its 8-hex-digit fingerprint.
    assert len(m.location) == 8 and int(m.location, 16) >= 0
    caveats = [c.caveat_id_bytes for c in m.caveats]
    assert caveats == [b"services=demo:0", f"demo_valid_until={VALID_UNTIL}".encode()]
    assert all(c.first_party() for c in m.caveats)
    # pymacaroons writes it back byte for byte.
    assert BinarySerializer().serialize_raw(m) == raw


def test_pymacaroons_verifies_our_macaroon_with_the_raw_root_key():
    m = BinarySerializer().deserialize_raw(base64.b64decode(plannt_mint()))
    v = Verifier()
    v.satisfy_exact("services=demo:0")
    v.satisfy_exact(f"demo_valid_until={VALID_UNTIL}")
    assert v.verify(m, ROOT_KEY)


def test_pymacaroons_refuses_our_macaroon_under_another_key():
    m = BinarySerializer().deserialize_raw(base64.b64decode(plannt_mint()))
    v = Verifier()
    v.satisfy_exact("services=demo:0")
    v.satisfy_exact(f"demo_valid_until={VALID_UNTIL}")
    with pytest.raises(MacaroonInvalidSignatureException):
        v.verify(m, bytes(32))


def test_pymacaroons_refuses_our_macaroon_when_a_caveat_is_not_satisfied():
    m = BinarySerializer().deserialize_raw(base64.b64decode(plannt_mint()))
    v = Verifier()
    v.satisfy_exact("services=demo:0")
    # pymacaroons reports an unmet caveat as a signature mismatch; both are verification failures.
    with pytest.raises(MacaroonVerificationFailedException):
        v.verify(m, ROOT_KEY)


# --- pymacaroons mints, Plannt verifies -----------------------------------------------------


def pymacaroons_mint(caveats, location="py-key"):
    m = Macaroon(
        location=location,
        identifier=aperture_identifier(PAYMENT_HASH),
        key=ROOT_KEY,
        version=MACAROON_V2,
    )
    for caveat in caveats:
        m.add_first_party_caveat(caveat)
    return m


def header_forms(m):
    """pymacaroons' own text form (URL-safe, unpadded) and the standard padded header form."""
    raw = BinarySerializer().serialize_raw(m)
    return [m.serialize(serializer=BinarySerializer()), base64.b64encode(raw).decode()]


def test_plannt_verifies_a_pymacaroons_macaroon():
    m = pymacaroons_mint(["services=demo:0", f"demo_valid_until={VALID_UNTIL}"])
    for text in header_forms(m):
        code, out, err = plannt_verify(text)
        assert code == 0, (out, err)
        assert out.startswith(f"ok payment_hash={PAYMENT_HASH.hex()} ")
        assert "services=demo:0" in out and f"demo_valid_until={VALID_UNTIL}" in out


def test_plannt_refuses_a_pymacaroons_macaroon_for_another_route():
    m = pymacaroons_mint(["services=other:0", f"other_valid_until={VALID_UNTIL}"])
    for text in header_forms(m):
        assert plannt_verify(text)[:2] == (1, "wrong_route")


def test_plannt_refuses_a_pymacaroons_macaroon_under_another_key():
    m = pymacaroons_mint(["services=demo:0", f"demo_valid_until={VALID_UNTIL}"])
    code, out, _ = plannt_verify(header_forms(m)[1], key=bytes(32))
    assert (code, out) == (1, "bad_signature")


def test_plannt_refuses_a_pymacaroons_macaroon_that_expired():
    m = pymacaroons_mint(["services=demo:0", "demo_valid_until=1000000000"])
    assert plannt_verify(header_forms(m)[1])[:2] == (1, "expired")
