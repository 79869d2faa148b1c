"""Buys L402 tokens from one of the Python servers of bench/python for the load harness.

    python bench/python/mint.py BASE_URL COUNT THREADS OUT_FILE [PATH]

For each token: GET PATH (default /v1/demo) without a credential -> 402 whose WWW-Authenticate
names a macaroon and an invoice; POST /_dev/pay {"invoice"} on the same keep-alive connection
(so on the same server worker, which alone knows the preimage) -> the preimage; check
sha256(preimage) == payment_hash; write `L402 <macaroon>:<preimage>` as one line of OUT_FILE.
Before that, each thread spends one token of its own with a paid request that must get a 200,
so a file of tokens the server would refuse is never written. Bounded: COUNT tokens, and it
gives up after BENCH_MINT_TIMEOUT_SECS (default 900) or at the first unexpected answer.

Only the standard library.
"""

import hashlib
import http.client
import json
import os
import re
import sys
import threading
import time
from urllib.parse import urlsplit

CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
# The L402 challenge anywhere in a WWW-Authenticate value: its parameters up to the next one.
L402_CHALLENGE = re.compile(r'(?:^|,\s*)(?:L402|LSAT)\s+((?:\w+="[^"]*"(?:\s*,\s*)?)+)', re.IGNORECASE)


def challenge(conn: http.client.HTTPConnection, path: str) -> tuple[str, str]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 402:
        raise RuntimeError(f"GET {path}: expected 402, got {response.status} {body[:200]!r}")
    header = response.getheader("WWW-Authenticate") or ""
    # http.client joins the 402's WWW-Authenticate values; the L402 challenge may follow MPP's.
    found = L402_CHALLENGE.search(header)
    params = dict(CHALLENGE_PARAM.findall(found.group(1))) if found else {}
    macaroon = params.get("macaroon") or params.get("token")
    if not macaroon or not params.get("invoice"):
        raise RuntimeError(f"GET {path}: unexpected WWW-Authenticate {header!r}")
    return macaroon, params["invoice"]


def pay(conn: http.client.HTTPConnection, invoice: str) -> str:
    conn.request("POST", "/_dev/pay", body=json.dumps({"invoice": invoice}),
                 headers={"content-type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST /_dev/pay: expected 200, got {response.status} {body[:200]!r}")
    paid = json.loads(body)
    preimage = paid["preimage"]
    if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != paid["payment_hash"]:
        raise RuntimeError(f"preimage {preimage} does not hash to {paid['payment_hash']}")
    return preimage


def main() -> None:
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: python bench/python/mint.py BASE_URL COUNT THREADS OUT_FILE [PATH]")
    base, count, threads, out_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    path = sys.argv[5] if len(sys.argv) == 6 else "/v1/demo"
    url = urlsplit(base)
    deadline = time.monotonic() + float(os.environ.get("BENCH_MINT_TIMEOUT_SECS", "900"))
    lock = threading.Lock()
    tokens: list[str] = []
    errors: list[str] = []
    started = time.monotonic()

    def worker() -> None:
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            macaroon, invoice = challenge(conn, path)
            credential = f"L402 {macaroon}:{pay(conn, invoice)}"
            conn.request("GET", path, headers={"Authorization": credential})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"a paid GET {path}: expected 200, got {response.status} {body[:200]!r}")
            while True:
                with lock:
                    if errors or len(tokens) >= count:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gave up with {len(tokens)} of {count} tokens")
                macaroon, invoice = challenge(conn, path)
                token = f"L402 {macaroon}:{pay(conn, invoice)}"
                with lock:
                    if len(tokens) < count:
                        tokens.append(token)
        except Exception as error:  # noqa: BLE001 - reported below, then the run fails
            with lock:
                errors.append(str(error))

    pool = [threading.Thread(target=worker) for _ in range(max(1, threads))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        sys.exit(f"mint: {errors[0]}")
    with open(out_file, "w") as out:
        out.writelines(token + "\n" for token in tokens)
    secs = time.monotonic() - started
    print(f"mint: {len(tokens)} tokens in {secs:.1f} s ({len(tokens) / secs:.0f}/s, challenge + payment each)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
