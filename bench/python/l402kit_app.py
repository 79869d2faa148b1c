"""l402kit (PyPI) in its dev mode, serving the route plannt serve's demo service protects.

Used by bench/side-by-side.sh and interop/python/test_side_by_side.py. Run it under uvicorn:

    uvicorn --app-dir bench/python l402kit_app:app --port 8000 --workers 2

Routes:
    GET  /v1/demo   21 sats through l402kit's `l402_required` decorator; {"result":"verified"}
                    once paid (the body of plannt's built-in `demo` handler)
    GET  /v1/free   the same answer without a paywall: the framework's own speed, a baseline
    POST /_dev/pay  {"invoice": "DEV:<hash>"} -> {"preimage": hex, "payment_hash": hex}

The Lightning side is l402kit's own `DevProvider` (no node; its invoices are the string
`DEV:<payment hash>`, not BOLT11) and `/_dev/pay` is its `DevWallet`, which "pays" by reading the
preimage back from the provider. The provider keeps its preimages in the memory of one process:
with several workers, a client must pay on the connection that got the 402 (HTTP keep-alive
keeps it on one worker; bench/python/mint.py does so). Spent preimages are l402kit's module-level
in-memory set, also one per worker process.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from l402kit import DevProvider, DevWallet, l402_required

PRICE_SATS = 21
ANSWER = {"result": "verified"}

provider = DevProvider()
wallet = DevWallet(provider)
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/v1/demo")
@l402_required(price_sats=PRICE_SATS, lightning=provider)
async def demo(request: Request):
    return ANSWER


@app.get("/v1/free")
async def free():
    return ANSWER


@app.post("/_dev/pay")
async def pay(request: Request):
    invoice = (await request.json()).get("invoice", "")
    try:
        preimage = wallet.pay_invoice(invoice)
    except (KeyError, ValueError):
        return JSONResponse({"error": "unknown invoice (paid on another worker?)"}, status_code=404)
    return {"preimage": preimage, "payment_hash": invoice[len("DEV:"):]}
