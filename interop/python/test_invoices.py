"""PyPI `bolt11` against the invoices Plannt issues and reads.

Invoices come from the dev network (`plannt wallet --wallet dev invoice …`, with its own data
folder) and from a real LNbits (its API, with the payee's invoice key, when scripts/test has
started one: PLANNT_TEST_LNBITS_*). `bolt11.decode` checks the signature itself (against the
`n` field, or by recovering the payee's key), and every field it reads must equal what
`plannt decode --json` reports. The binary comes from PLANNT_BIN (default `target/debug/plannt`,
relative to the repository).
"""

import json
import os
import subprocess
import urllib.request
from datetime import datetime

import bech32
import bolt11
import pytest
from bolt11.exceptions import Bolt11SignatureVerifyException
from bolt11.models.tags import TagChar

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PLANNT_BIN", "target/debug/plannt")
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)

# Plannt's network names and the BOLT11 currency prefixes.
CURRENCY = {"bitcoin": "bc", "testnet": "tb", "signet": "tbs", "regtest": "bcrt"}

LNBITS_VARS = ["PLANNT_TEST_LNBITS_URL", "PLANNT_TEST_LNBITS_PAYEE_INKEY"]


def in_ci() -> bool:
    return os.environ.get("CI") in ("true", "1")


def plannt(*args: str, data_dir: str | None = None) -> subprocess.CompletedProcess:
    if not os.path.isfile(BIN):
        pytest.fail(f"{BIN} is missing: build it with `cargo build -p plannt` (or set PLANNT_BIN)")
    env = dict(os.environ)
    if data_dir is not None:
        env["PLANNT_DATA_DIR"] = data_dir
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, env=env)


def plannt_decode(invoice: str) -> dict:
    out = plannt("decode", "--json", invoice)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def rfc3339(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def dev_invoice(tmp_path, sats: int, *extra: str) -> str:
    out = plannt("wallet", "--wallet", "dev", "invoice", str(sats), "--json", *extra, data_dir=str(tmp_path))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["bolt11"]


def lnbits() -> tuple[str, str]:
    """The test LNbits' URL and payee invoice key; fails in CI, skips loudly elsewhere."""
    missing = [name for name in LNBITS_VARS if not os.environ.get(name)]
    if missing:
        message = f"no LNbits to issue invoices: {', '.join(missing)} not set (scripts/test starts one)"
        if in_ci():
            pytest.fail(f"{message}; CI=true: this test may not be skipped")
        pytest.skip(f"!!! SKIPPED: {message}")
    return os.environ["PLANNT_TEST_LNBITS_URL"], os.environ["PLANNT_TEST_LNBITS_PAYEE_INKEY"]


def lnbits_invoice(sats: int, memo: str, expiry: int) -> tuple[str, dict]:
    url, inkey = lnbits()
    body = json.dumps({"out": False, "amount": sats, "unit": "sat", "memo": memo, "expiry": expiry})
    req = urllib.request.Request(
        f"{url}/api/v1/payments",
        data=body.encode(),
        method="POST",
        headers={"X-Api-Key": inkey, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        assert response.status == 201
        created = json.load(response)
    return created["payment_request"], created


def tampered(invoice: str) -> str:
    """The invoice with one bit of its timestamp flipped, under a valid bech32 checksum: the
    signature no longer covers it."""
    hrp, words = bech32.bech32_decode(invoice)
    assert hrp is not None, "not bech32"
    words = list(words)
    words[6] ^= 1  # the timestamp's last 5 bits
    return bech32.bech32_encode(hrp, words)


def assert_same(invoice: str, ours: dict, strict: bool = True) -> bolt11.Bolt11:
    """Decodes with PyPI bolt11 (which checks the signature) and compares field by field.
    `strict` also requires the `c` field (min_final_cltv_expiry) BOLT 11 asks writers for."""
    theirs = bolt11.decode(invoice, strict=strict)
    assert ours["kind"] == "invoice" and ours["signature_valid"] is True
    assert theirs.currency == CURRENCY[ours["network"]]
    assert invoice.lower().startswith("ln" + theirs.currency)
    assert theirs.amount_msat == ours["amount_msat"]
    assert theirs.payment_hash == ours["payment_hash"]
    assert theirs.payee == ours["payee"]
    assert theirs.description == ours["description"]
    assert theirs.description_hash is None
    assert theirs.date == rfc3339(ours["created_at"])
    assert theirs.expiry == ours["expiry_secs"]
    assert theirs.date + theirs.expiry == rfc3339(ours["expires_at"])
    assert theirs.payment_secret, "a payment secret, as every modern invoice carries"
    return theirs


# --- the dev network ------------------------------------------------------------------------


def test_dev_invoice_reads_the_same_in_bolt11(tmp_path):
    invoice = dev_invoice(tmp_path, 21)
    ours = plannt_decode(invoice)
    assert ours["network"] == "regtest" and ours["amount_msat"] == 21_000
    theirs = assert_same(invoice, ours)
    # The dev node names itself in the `n` field, so bolt11 verified against that key.
    assert theirs.tags.has(TagChar.payee)
    assert theirs.is_regtest()


def test_dev_invoice_memo_and_expiry(tmp_path):
    memo = "plannt: 1 cup ☕ — über"
    invoice = dev_invoice(tmp_path, 1, "--memo", memo, "--expiry", "600")
    ours = plannt_decode(invoice)
    assert ours["description"] == memo and ours["expiry_secs"] == 600
    assert_same(invoice, ours)


def test_dev_invoices_share_the_node_key(tmp_path):
    first = bolt11.decode(dev_invoice(tmp_path, 2))
    second = bolt11.decode(dev_invoice(tmp_path, 3))
    assert first.payee == second.payee
    assert first.payment_hash != second.payment_hash


def test_a_tampered_dev_invoice_fails_both_decoders(tmp_path):
    bad = tampered(dev_invoice(tmp_path, 21))
    with pytest.raises(Bolt11SignatureVerifyException):
        bolt11.decode(bad)
    out = plannt("decode", "--json", bad)
    assert out.returncode != 0
    assert "signature" in out.stderr


# --- LNbits ---------------------------------------------------------------------------------


def test_lnbits_invoice_reads_the_same_in_bolt11_and_plannt():
    invoice, created = lnbits_invoice(21, "plannt: lnbits ☕", 600)
    ours = plannt_decode(invoice)
    assert ours["network"] == "bitcoin" and ours["amount_msat"] == 21_000
    assert ours["payment_hash"] == created["payment_hash"]
    assert ours["description"] == "plannt: lnbits ☕" and ours["expiry_secs"] == 600
    # LNbits' FakeWallet writes no `c` field (readers assume 18), no feature field and no `n`
    # (the payee is recovered from the signature).
    theirs = assert_same(invoice, ours, strict=False)
    assert theirs.is_mainnet()
    assert theirs.features is None


def test_a_tampered_lnbits_invoice_names_another_payee():
    invoice, _ = lnbits_invoice(5, "plannt: tamper", 600)
    payee = bolt11.decode(invoice).payee
    bad = tampered(invoice)
    # Without an `n` field a decoder can only recover a key: a different one, or none.
    try:
        assert bolt11.decode(bad).payee != payee
    except Exception:  # noqa: BLE001  (no key recovers: as good a refusal)
        pass
    out = plannt("decode", "--json", bad)
    assert out.returncode != 0 or json.loads(out.stdout)["payee"] != payee
