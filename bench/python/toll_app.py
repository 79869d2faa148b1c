"""lightning-toll (PyPI) with a mock wallet, serving the route plannt serve's demo service protects.

Used by bench/side-by-side.sh and interop/python/test_side_by_side.py. Run it under uvicorn:

    TOLL_SECRET=$(openssl rand -hex 32) uvicorn --app-dir bench/python toll_app:app --port 8000 --workers 2

Routes:
    GET  /v1/demo   21 sats through lightning-toll's `@toll.require(sats=21)` decorator;
                    {"result":"verified"} once paid (the body of plannt's built-in `demo` handler)
    GET  /v1/free   the same answer without a paywall: the framework's own speed, a baseline
    POST /_dev/pay  {"invoice": "..."} -> {"preimage": hex, "payment_hash": hex}

lightning-toll's test mode is a wallet object of your own passed as `create_toll(wallet=...)`
(its README's "mock wallet"; its demo's MockWallet makes a fake `lnbc…demo…` string and a random
payment hash). The route uses `@toll.require(...)`, the decorator form: the README's
`Depends(toll(sats=…))` does not work under FastAPI in 0.1.1 (the dependency's parameter is
annotated `Any`, not `Request`, so FastAPI asks for a query parameter `request` and answers 422). `MockWallet` below does the same, but keeps each preimage so that `/_dev/pay` can
hand it out, as a payment would. Preimages live in one worker's memory: with several workers, pay
on the connection that got the 402 (bench/python/mint.py does so). Tokens themselves are checked
statelessly (HMAC with TOLL_SECRET, which every worker shares, and sha256(preimage)).
"""

import hashlib
import os
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from lightning_toll import create_toll
from lightning_toll.nwc import InvoiceResult, LookupResult

PRICE_SATS = 21
ANSWER = {"result": "verified"}


class MockWallet:
    """A wallet that issues fake invoices and remembers their preimages (test mode)."""

    def __init__(self) -> None:
        self.preimages: dict[str, tuple[str, str]] = {}  # invoice -> (preimage, payment hash)

    async def create_invoice(self, amount_sats: int, description: str = "", expiry: int = 300):
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        invoice = f"lnbc{amount_sats}0n1demo{secrets.token_hex(20)}"
        self.preimages[invoice] = (preimage.hex(), payment_hash)
        return InvoiceResult(invoice=invoice, payment_hash=payment_hash)

    async def wait_for_payment(self, payment_hash: str, timeout_ms: int = 300000):
        return LookupResult(paid=False)

    async def close(self) -> None:
        pass


wallet = MockWallet()
toll = create_toll(wallet=wallet, secret=os.environ.get("TOLL_SECRET") or secrets.token_hex(32))
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/v1/demo")
@toll.require(sats=PRICE_SATS)
async def demo(request: Request):
    return ANSWER


@app.get("/v1/free")
async def free():
    return ANSWER


@app.post("/_dev/pay")
async def pay(request: Request):
    invoice = (await request.json()).get("invoice", "")
    found = wallet.preimages.get(invoice)
    if found is None:
        return JSONResponse({"error": "unknown invoice (paid on another worker?)"}, status_code=404)
    return {"preimage": found[0], "payment_hash": found[1]}
