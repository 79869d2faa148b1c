"""PyPI `openai`, the official SDK, unchanged through a metered route of `plannt serve`.

The gateway runs on the dev network (memory store, a fresh data folder, a free loopback port)
with one route, `POST /v1/chat/completions`, priced by its tokens (`price = { per =
"openai-tokens", … }`) and forwarded to the OpenAI-compatible upstream of the tests (the
`openai-upstream` binary of plannt-testkit, beside PLANNT_BIN; OPENAI_UPSTREAM_BIN overrides).

Each test asks for the 402 of a request, checks that the price is the rule applied to it (the
prompt tokens the upstream reports, the output at the request's max_tokens), pays the invoice
with `plannt wallet pay` on the dev network, then calls `client.chat.completions.create(...)`
with nothing changed but `base_url` and `default_headers={"Authorization": "L402 …"}`: plain
and streamed (`stream=True`, `stream_options={"include_usage": True}`). The answer and its usage
must be the upstream's own for the same request. A token buys one call: the same token for
another request, or for a dearer one, is refused with a 402. The route also sells prepaid
sessions (MPP `intent="session"`): the SDK streams through one with the session's credential in
`default_headers`, and what the session is debited is the upstream's usage priced by the rule.
If the package is missing the tests fail under CI=true and are skipped, loudly, elsewhere.
"""

import base64
import importlib.util
import json
import re
import math
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from plannt_serve import BIN, in_ci, serve, stop

UPSTREAM = Path(os.environ.get("OPENAI_UPSTREAM_BIN", BIN.parent / "openai-upstream"))

# Sats per 1,000 tokens, in millisats: what the route's rule below says.
PRICES = {"gpt-4o-mini": (2000, 8000), "gpt-4o": (10000, 40000)}
MIN_SATS = 1

CONFIG = """
[[routes]]
id = "chat"
path = "/v1/chat/completions"
method = "POST"
upstream = "{upstream}"
description = "Chat completions, priced by their tokens"
price = {{ per = "openai-tokens", models = {{ "gpt-4o-mini" = {{ input_per_1k = 2, output_per_1k = 8 }}, "gpt-4o" = {{ input_per_1k = 10, output_per_1k = 40 }} }}, default_max_tokens = 256, max_tokens_ceiling = 2048, min_sats = 1 }}
session = {{ deposit_sats = 500, idle_secs = 300 }}
"""

PROMPT = "Say the words of this sentence back to me, in order."


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def stack():
    if importlib.util.find_spec("openai") is None:
        message = "openai not installed (pip install -r interop/requirements.txt)"
        if in_ci():
            pytest.fail(f"{message}; CI=true: this test may not be skipped")
        pytest.skip(f"!!! SKIPPED: {message}")
    for binary, how in ((BIN, "cargo build -p plannt (or set PLANNT_BIN)"),
                        (UPSTREAM, "cargo build -p plannt-testkit --bin openai-upstream")):
        if not binary.is_file():
            pytest.fail(f"{binary} is missing: build it with `{how}`")
    upstream = subprocess.Popen([str(UPSTREAM), "--listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        line = upstream.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        upstream_url = line.removeprefix("listening on ")
        with tempfile.TemporaryDirectory(prefix="plannt-openai-") as work:
            work = Path(work)
            with serve(CONFIG.format(upstream=upstream_url), work,
                       PLANNT_CHALLENGES_PER_SECOND="0") as gateway:
                yield {"gateway": gateway.base, "upstream": upstream_url, "work": work,
                       "env": gateway.env}
    finally:
        stop(upstream)


def rule_price(model: str, prompt_tokens: int, max_tokens: int) -> int:
    """The route's rule, applied in Python: whole sats, rounded up, at least the minimum."""
    input_msat, output_msat = PRICES[model]
    return max(MIN_SATS, math.ceil((prompt_tokens * input_msat + max_tokens * output_msat) / 1_000_000))


def paid_token(stack, body: dict) -> tuple[str, dict]:
    """The 402 for `body`, paid: the `Authorization` value and the 402's JSON."""
    status, challenge = post(f"{stack['gateway']}/v1/chat/completions", body)
    assert status == 402, challenge
    env = dict(stack["env"], PLANNT_DATA_DIR=str(stack["work"] / "payer"))
    paid = subprocess.run(
        [str(BIN), "wallet", "--wallet", f"dev+{stack['gateway']}", "pay", challenge["invoice"], "--json"],
        env=env, capture_output=True, text=True, timeout=60)
    assert paid.returncode == 0, paid.stderr
    payment = json.loads(paid.stdout)
    assert payment["amount_msat"] == challenge["amount_sats"] * 1000, "paid what the 402 asked"
    return f"L402 {challenge['macaroon']}:{payment['preimage']}", challenge


def sdk(stack, authorization: str):
    from openai import OpenAI

    return OpenAI(base_url=f"{stack['gateway']}/v1", api_key="not-used-by-the-gateway",
                  default_headers={"Authorization": authorization}, max_retries=0)


def test_the_sdk_pays_once_and_gets_the_upstreams_answer(stack):
    import openai

    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 12}
    authorization, challenge = paid_token(stack, request)
    # What the upstream itself answers to the same request (it is free to ask it directly).
    status, direct = post(f"{stack['upstream']}/v1/chat/completions", request)
    assert status == 200, direct
    # The price is the rule applied to this request: the prompt as the upstream counts it, the
    # output at max_tokens.
    assert challenge["price"]["input_tokens"] == direct["usage"]["prompt_tokens"]
    assert challenge["amount_sats"] == rule_price("gpt-4o-mini", direct["usage"]["prompt_tokens"], 12)

    client = sdk(stack, authorization)
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], max_tokens=12)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == direct["choices"][0]["message"]["content"]
    assert completion.choices[0].message.content.startswith("echo: Say the words")
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    assert completion.usage.completion_tokens == direct["usage"]["completion_tokens"] <= 12
    assert completion.usage.total_tokens == direct["usage"]["total_tokens"]

    # One call per token: the same token for another request is refused, with a new invoice.
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "another question"}], max_tokens=12)
    assert refused.value.status_code == 402
    assert refused.value.response.json()["reason"] == "spent"
    assert refused.value.response.json()["invoice"] != challenge["invoice"]


def test_the_sdk_streams_with_usage_through_the_gateway(stack):
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 40,
               "stream": True, "stream_options": {"include_usage": True}}
    authorization, challenge = paid_token(stack, request)
    plain = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
    status, direct = post(f"{stack['upstream']}/v1/chat/completions", plain)
    assert status == 200, direct
    assert challenge["amount_sats"] == rule_price("gpt-4o", direct["usage"]["prompt_tokens"], 40)

    stream = sdk(stack, authorization).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], max_tokens=40,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct["choices"][0]["message"]["content"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        direct["usage"]["prompt_tokens"], direct["usage"]["completion_tokens"], direct["usage"]["total_tokens"])


def test_a_token_for_a_cheap_request_does_not_buy_a_dearer_one_through_the_sdk(stack):
    import openai

    cheap = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5}
    authorization, challenge = paid_token(stack, cheap)
    client = sdk(stack, authorization)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], max_tokens=2000)
    body = refused.value.response.json()
    assert refused.value.status_code == 402
    assert body["reason"] == "caveat_failed"
    assert body["amount_sats"] > challenge["amount_sats"], "a new invoice at the dearer price"
    # The refusal spent nothing: the token still buys the request it paid for.
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], max_tokens=5)
    assert completion.usage.completion_tokens <= 5
    # A model the route does not sell is a 404 before any invoice, as OpenAI words it.
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert unknown.value.code == "model_not_found"


def test_the_catalog_and_openapi_say_how_the_route_is_priced(stack):
    with urllib.request.urlopen(f"{stack['gateway']}/.well-known/l402.json", timeout=10) as r:
        catalog = json.loads(r.read())
    pricing = catalog["services"][0]["pricing"]
    assert (pricing["model"], pricing["per"]) == ("metered", "openai-tokens")
    assert pricing["rule"]["models"]["gpt-4o"] == {"input_per_1k": 10, "output_per_1k": 40}
    with urllib.request.urlopen(f"{stack['gateway']}/openapi.json", timeout=10) as r:
        doc = json.loads(r.read())
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        from openapi_spec_validator import validate

        validate(doc)
    offer = doc["paths"]["/v1/chat/completions"]["post"]["x-payment-info"]["offers"][0]
    assert offer["amount"] is None, "the amount is the 402's"
    assert offer["x-plannt-price-rule"]["max_tokens_ceiling"] == 2048


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_challenge(headers) -> dict:
    """The `intent="session"` challenge among the 402's `WWW-Authenticate` values, as its params."""
    for value in headers.get_all("WWW-Authenticate") or []:
        for challenge in re.split(r",\s*(?=Payment )", value):
            if not challenge.startswith("Payment "):
                continue
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            if params.get("intent") == "session":
                return params
    raise AssertionError(f"no session challenge in {headers}")


def credential(challenge: dict, payload: dict) -> str:
    return "Payment " + b64url(json.dumps({"challenge": challenge, "payload": payload}).encode())


def usage_price(model: str, prompt_tokens: int, completion_tokens: int) -> int:
    """What the rule charges for a usage: whole sats, rounded up, at least the minimum."""
    input_msat, output_msat = PRICES[model]
    return max(MIN_SATS, math.ceil((prompt_tokens * input_msat + completion_tokens * output_msat) / 1_000_000))


def dev_balance(stack, account: str) -> int:
    url = f"{stack['gateway']}/_plannt/dev/balance?account={account}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["balance_msat"]


def test_the_sdk_streams_through_a_session_debited_by_the_upstreams_usage(stack):
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 40,
               "stream": True, "stream_options": {"include_usage": True}}
    # The 402 offers a session beside the single-use charge.
    url = f"{stack['gateway']}/v1/chat/completions"
    http_request = urllib.request.Request(url, data=json.dumps(request).encode(), method="POST",
                                          headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as offered:
        urllib.request.urlopen(http_request, timeout=10)
    assert offered.value.code == 402
    challenge = session_challenge(offered.value.headers)
    session_request = json.loads(unb64url(challenge["request"]))
    assert session_request["depositAmount"] == "500"
    assert session_request["unitType"] == "token"

    # Pay the deposit with `plannt wallet pay`; a return invoice of the client's own account.
    env = dict(stack["env"], PLANNT_DATA_DIR=str(stack["work"] / "session-payer"))
    paid = subprocess.run(
        [str(BIN), "wallet", "--wallet", f"dev+{stack['gateway']}", "pay",
         session_request["depositInvoice"], "--json"],
        env=env, capture_output=True, text=True, timeout=60)
    assert paid.returncode == 0, paid.stderr
    preimage = json.loads(paid.stdout)["preimage"]
    status, issued = post(f"{stack['gateway']}/_plannt/dev/return-invoices",
                          {"account": "sdk-refunds", "memo": "refund", "expiry_secs": 3600})
    assert status == 200, issued
    before = dev_balance(stack, "sdk-refunds")

    # Open, then a bearer call: each streamed through the SDK, unchanged but for its headers.
    session_id = session_request["paymentHash"]
    opening = credential(challenge, {"action": "open", "preimage": preimage,
                                     "returnInvoice": issued["bolt11"]})
    bearer = credential(challenge, {"action": "bearer", "sessionId": session_id, "preimage": preimage})
    expected = 0
    for authorization, prompt in ((opening, PROMPT), (bearer, "and now these other words")):
        stream = sdk(stack, authorization).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": prompt}], max_tokens=40,
            stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("echo:")
        usage = chunks[-1].usage
        expected += usage_price("gpt-4o", usage.prompt_tokens, usage.completion_tokens)

    # Close: the refund is the deposit less exactly what the usage costs, paid to the return
    # invoice.
    closing = credential(challenge, {"action": "close", "sessionId": session_id, "preimage": preimage})
    close_request = urllib.request.Request(
        url, data=json.dumps(request).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": closing})
    with urllib.request.urlopen(close_request, timeout=30) as response:
        closed = json.loads(response.read())
        receipt = json.loads(unb64url(response.headers["Payment-Receipt"]))
    assert closed["spent"] == expected, closed
    assert closed["refundSats"] == 500 - expected
    assert receipt["refundSats"] == 500 - expected
    assert receipt["refundStatus"] == "succeeded"
    assert dev_balance(stack, "sdk-refunds") == before + (500 - expected) * 1000
