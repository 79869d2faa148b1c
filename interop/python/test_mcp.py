"""The PyPI `mcp` client (2.3.0) drives `plannt mcp`, over stdio and over streamable HTTP.

A gateway runs the demo service on the dev network (`plannt serve --store memory`, a fresh data
folder, a free loopback port, `PLANNT_CHALLENGES_PER_SECOND=0`); each test starts its own
`plannt mcp` with its own ledger, budgets and dev account (`PLANNT_WALLET=dev+http://…?account=…`),
and checks what was paid against the dev network's own balance of that account.

What the client negotiates: mcp 2.3.0's `Client` probes `server/discover` first (mode "auto")
and settles on protocol 2026-07-28, where a server may not send requests to the client: a
payment above `confirm_above_sats` is confirmed through an `InputRequiredResult` whose
elicitation the client answers with its elicitation callback, then calls the tool again. With
mode "legacy" it runs the `initialize` handshake (2025-11-25) and the server sends
`elicitation/create` in the middle of the call. Both are tested.

The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager

import anyio
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PLANNT_BIN", "target/debug/plannt")
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)

TOOLS = {"fetch", "discover", "balance", "spending"}
DEMO_SATS = 21
DATA_SATS = 100


def clean_env() -> dict:
    """The environment without PLANNT_* settings, so only what a test sets applies."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PLANNT_")}


def need_binary() -> None:
    if not os.path.isfile(BIN):
        pytest.fail(f"{BIN} is missing: build it with `cargo build -p plannt` (or set PLANNT_BIN)")


class Process:
    """A child whose stderr (JSON log lines) is read on a thread, to find where it listens."""

    def __init__(self, args: list[str], env: dict, ready: str):
        need_binary()
        self.lines: list[str] = []
        self.found: queue.Queue = queue.Queue()
        self.child = subprocess.Popen(
            [BIN, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        try:
            self.addr = self.found.get(timeout=60)
        except queue.Empty:
            self.stop()
            pytest.fail(f"`plannt {' '.join(args)}` did not say where it listens:\n" + "".join(self.lines))
        if self.addr is None:
            pytest.fail(f"`plannt {' '.join(args)}` exited before listening:\n" + "".join(self.lines))

    def _read(self, ready: str) -> None:
        for line in self.child.stderr:
            self.lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("fields", {}).get("message") == ready:
                self.found.put(entry["fields"]["addr"])
        self.found.put(None)

    def stop(self) -> None:
        self.child.terminate()
        try:
            self.child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    data = tmp_path_factory.mktemp("gateway")
    env = dict(clean_env(), PLANNT_DATA_DIR=str(data), PLANNT_CHALLENGES_PER_SECOND="0", RUST_LOG="info")
    server = Process(["serve", "--listen", "127.0.0.1:0", "--store", "memory", "--log-json"], env,
                     "plannt gateway listening")
    yield f"http://{server.addr}"
    server.stop()


def dev_balance_sats(gateway: str, account: str) -> int:
    """The dev network's own account of a wallet's balance: what was really paid."""
    with urllib.request.urlopen(f"{gateway}/_plannt/dev/balance?account={account}", timeout=30) as r:
        return json.load(r)["balance_sats"]


class Mcp:
    """One `plannt mcp`: its settings, its ledger, its dev account, and how to reach it."""

    def __init__(self, transport: str, gateway: str, data_dir, settings: dict):
        self.transport = transport
        self.gateway = gateway
        self.account = "mcp-" + uuid.uuid4().hex[:12]
        config_dir = data_dir / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        env = dict(
            clean_env(),
            PLANNT_DATA_DIR=str(data_dir / "data"),
            PLANNT_CONFIG_DIR=str(config_dir),
            PLANNT_WALLET=f"dev+{gateway}?account={self.account}",
            PLANNT_MAX_FEE_SATS="0",
            PLANNT_CONFIRM_ABOVE_SATS="50",
            # The gateway is on loopback, which `plannt mcp` refuses unless the operator allows it.
            PLANNT_ALLOW_PRIVATE_NETWORKS="true",
            RUST_LOG="info",
        )
        env.update({k: str(v) for k, v in settings.items()})
        self.env = env
        self.http = None
        if transport == "http":
            self.http = Process(["mcp", "--http", "127.0.0.1:0", "--log-json"], env, "plannt mcp listening")

    def client(self, **options) -> Client:
        if self.http is not None:
            return Client(f"http://{self.http.addr}/mcp", **options)
        need_binary()
        return Client(StdioServerParameters(command=BIN, args=["mcp"], env=self.env), **options)

    def balance(self) -> int:
        return dev_balance_sats(self.gateway, self.account)

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()


@pytest.fixture(params=["stdio", "http"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def start(gateway, tmp_path):
    started: list[Mcp] = []

    def start(transport: str = "stdio", **settings) -> Mcp:
        server = Mcp(transport, gateway, tmp_path / f"mcp{len(started)}", settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run(test, *args):
    """Runs an async test body; a hung call fails the test instead of hanging the suite."""

    async def bounded():
        with anyio.fail_after(120):
            return await test(*args)

    return anyio.run(bounded)


def data(result) -> dict:
    assert result.structured_content is not None, result.content
    return result.structured_content


def text(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "text", None))


def accepting(asked: list):
    async def callback(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"confirm": True})

    return callback


def declining(asked: list):
    async def callback(context, params):
        asked.append(params)
        return types.ElicitResult(action="decline")

    return callback


def check_receipt(receipt: dict, sats: int) -> None:
    assert receipt["amount_sats"] == sats
    assert receipt["reused_token"] is False
    assert hashlib.sha256(bytes.fromhex(receipt["preimage"])).hexdigest() == receipt["payment_hash"]


# --- tools/list --------------------------------------------------------------------------------


def test_lists_the_four_tools_on_the_negotiated_protocol(start, transport):
    server = start(transport, PLANNT_MAX_SATS_PER_REQUEST="400", PLANNT_BUDGET_DAILY_SATS="3000")

    async def body():
        async with server.client() as client:
            assert client.protocol_version == "2026-07-28"
            tools = {t.name: t for t in (await client.list_tools()).tools}
        async with server.client(mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            legacy = {t.name for t in (await client.list_tools()).tools}
        return tools, legacy

    tools, legacy = run(body)
    assert set(tools) == TOOLS == legacy
    fetch = tools["fetch"]
    # Written for a model: what it does, what it costs, when to use it, and the live limits.
    assert "pay" in fetch.description and "discover first" in fetch.description
    assert "at most 400 sats per request" in fetch.description
    assert "3000 sats per day" in fetch.description
    assert "above 50 sats" in fetch.description
    schema = fetch.input_schema
    assert schema["required"] == ["url"]
    assert {"url", "method", "headers", "body", "max_sats"} <= set(schema["properties"])
    assert "only lower" in schema["properties"]["max_sats"]["description"]
    assert tools["discover"].annotations.read_only_hint is True
    assert tools["fetch"].annotations.read_only_hint is False
    for tool in tools.values():
        assert len(tool.description) > 80, tool.name


# --- discover ----------------------------------------------------------------------------------


def test_discover_reads_the_catalog(start, transport, gateway):
    server = start(transport)

    async def body():
        async with server.client() as client:
            return await client.call_tool("discover", {"url": f"{gateway}/v1/demo"})

    result = run(body)
    assert not result.is_error, text(result)
    found = data(result)
    assert found["source"] == "catalog"
    assert found["catalog_url"] == f"{gateway}/.well-known/l402.json"
    assert found["match"]["url"] == f"{gateway}/v1/demo"
    assert found["match"]["price_sats"] == DEMO_SATS
    prices = {s["url"]: s.get("price_sats") for s in found["services"]}
    assert prices[f"{gateway}/v1/data"] == DATA_SATS
    assert prices[f"{gateway}/status"] == 0
    assert found["policy"]["confirm_above_sats"] == 50
    assert server.balance() == 1_000_000


@contextmanager
def no_catalog_proxy(gateway: str):
    """A server in front of the gateway with no /.well-known/l402.json: it answers that with a
    404 and passes every other GET through, 402 challenges included."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/.well-known/"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
            try:
                upstream = urllib.request.urlopen(urllib.request.Request(gateway + self.path, headers=headers), timeout=30)
            except urllib.error.HTTPError as e:
                upstream = e
            body = upstream.read()
            self.send_response(upstream.status if hasattr(upstream, "status") else upstream.code)
            for name, value in upstream.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_discover_without_a_catalog_asks_the_price_without_paying(start, gateway):
    server = start("stdio")
    with no_catalog_proxy(gateway) as bare:

        async def body():
            async with server.client() as client:
                paid = await client.call_tool("discover", {"url": f"{bare}/v1/data"})
                free = await client.call_tool("discover", {"url": f"{bare}/status"})
                return paid, free

        paid, free = run(body)
    assert not paid.is_error, text(paid)
    found = data(paid)
    assert found["source"] == "dry_run"
    assert found["price_sats"] == DATA_SATS
    assert found["needs_confirmation"] is True
    assert "nothing was paid" in found["note"]
    assert data(free)["free"] is True and data(free)["status"] == 200
    assert server.balance() == 1_000_000


# --- fetch -------------------------------------------------------------------------------------


def test_fetch_pays_the_demo_and_returns_the_receipt(start, transport, gateway):
    server = start(transport)

    async def body():
        async with server.client() as client:
            fetched = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo"})
            spending = await client.call_tool("spending", {})
            balance = await client.call_tool("balance", {})
            return fetched, spending, balance

    fetched, spending, balance = run(body)
    assert not fetched.is_error, text(fetched)
    got = data(fetched)
    assert got["status"] == 200
    assert got["content_type"] == "application/json"
    assert json.loads(got["body"]) == {"result": "verified"}
    assert got["body_truncated"] is False
    assert got["paid"] is True
    check_receipt(got["receipt"], DEMO_SATS)
    assert got["receipt"]["preimage"] in text(fetched)
    assert server.balance() == 1_000_000 - DEMO_SATS

    ledger = data(spending)
    [payment] = ledger["recent_payments"]
    assert payment["payment_hash"] == got["receipt"]["payment_hash"]
    assert (payment["status"], payment["amount_sats"]) == ("paid", DEMO_SATS)
    day = next(w for w in ledger["windows"] if w["window"] == "day")
    assert (day["used_sats"], day["left_sats"]) == (DEMO_SATS, 5000 - DEMO_SATS)
    assert data(balance)["balance_sats"] == 1_000_000 - DEMO_SATS


def test_fetch_over_budget_is_refused_and_pays_nothing(start, transport, gateway):
    server = start(transport, PLANNT_BUDGET_DAILY_SATS="20")

    async def body():
        async with server.client() as client:
            fetched = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo"})
            spending = await client.call_tool("spending", {})
            return fetched, spending

    fetched, spending = run(body)
    assert fetched.is_error
    refusal = data(fetched)
    assert refusal["error"] == "over_budget"
    assert (refusal["window"], refusal["left_sats"], refusal["paid"]) == ("day", 20, False)
    assert "20 sats left" in text(fetched) and "Nothing was paid" in text(fetched)
    assert server.balance() == 1_000_000
    ledger = data(spending)
    assert ledger["recent_payments"] == []
    assert ledger["recent_refusals"][0]["check"] == "over_budget"


def test_two_concurrent_fetches_over_the_budget_pay_once(start, transport, gateway):
    # 30 sats a day: one 21-sat payment fits, two do not.
    server = start(transport, PLANNT_BUDGET_DAILY_SATS="30")

    async def body():
        results = []
        async with server.client() as client:

            async def one():
                results.append(await client.call_tool("fetch", {"url": f"{gateway}/v1/demo"}))

            async with anyio.create_task_group() as group:
                group.start_soon(one)
                group.start_soon(one)
            spending = await client.call_tool("spending", {})
        return results, spending

    results, spending = run(body)
    paid = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert len(paid) == 1 and len(refused) == 1, [text(r) for r in results]
    check_receipt(data(paid[0])["receipt"], DEMO_SATS)
    assert data(refused[0])["error"] == "over_budget"
    assert data(refused[0])["left_sats"] < DEMO_SATS
    assert server.balance() == 1_000_000 - DEMO_SATS
    assert [p["amount_sats"] for p in data(spending)["recent_payments"]] == [DEMO_SATS]


def test_max_sats_lowers_the_cap_and_never_raises_it(start, gateway):
    server = start("stdio", PLANNT_MAX_SATS_PER_REQUEST="20")

    async def body():
        async with server.client() as client:
            lowered = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo", "max_sats": 5})
            raised = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo", "max_sats": 1_000_000})
            return lowered, raised

    lowered, raised = run(body)
    assert lowered.is_error and data(lowered)["check"] == "over_cap"
    assert data(lowered)["cap_sats"] == 5
    assert raised.is_error and data(raised)["check"] == "over_cap"
    assert data(raised)["cap_sats"] == 20
    assert "no tool argument can raise it" in text(raised)
    assert server.balance() == 1_000_000


def test_a_host_that_is_not_allowed_is_refused(start, gateway):
    server = start("stdio", PLANNT_ALLOWED_HOSTS="api.example.com")

    async def body():
        async with server.client() as client:
            return await client.call_tool("fetch", {"url": f"{gateway}/v1/demo"})

    result = run(body)
    assert result.is_error
    assert data(result)["error"] == "host_not_allowed"
    assert "api.example.com" in text(result)
    assert server.balance() == 1_000_000


def test_loopback_is_refused_unless_the_operator_allows_it(start, gateway):
    server = start("stdio", PLANNT_ALLOW_PRIVATE_NETWORKS="false")

    async def body():
        async with server.client() as client:
            return await client.call_tool("fetch", {"url": f"{gateway}/v1/demo"})

    result = run(body)
    assert result.is_error
    assert data(result)["error"] == "private_network"
    assert data(result)["sent"] is False
    assert "PLANNT_ALLOW_PRIVATE_NETWORKS" in text(result)
    assert server.balance() == 1_000_000


def test_the_wallets_own_api_is_never_reached(start, gateway):
    """An agent asked to pay an invoice through the dev wallet's own API, which the gateway serves
    beside the paid routes: refused whatever the settings, and nothing is paid."""
    server = start("stdio")
    request = urllib.request.Request(
        f"{gateway}/_plannt/dev/invoices",
        data=json.dumps({"amount_sats": 600, "memo": "not for the agent"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        invoice = json.load(r)["bolt11"]
    pay = json.dumps({"invoice": invoice, "account": server.account})

    async def body():
        async with server.client() as client:
            results = []
            for url in (f"{gateway}/_plannt/dev/pay", f"{gateway.replace('127.0.0.1', 'localhost')}/%5Fplannt/dev/pay"):
                results.append(await client.call_tool("fetch", {"url": url, "method": "POST", "body": pay}))
            spending = await client.call_tool("spending", {})
            return results, spending

    results, spending = run(body)
    for result in results:
        assert result.is_error
        assert data(result)["error"] == "wallet_api"
        assert "Nothing was sent or paid" in text(result)
    assert [r["check"] for r in data(spending)["recent_refusals"]] == ["wallet_api", "wallet_api"]
    assert server.balance() == 1_000_000


def test_a_long_body_is_cut_and_says_so(start, gateway):
    server = start("stdio", PLANNT_MCP_MAX_BODY_BYTES="64")

    async def body():
        async with server.client() as client:
            return await client.call_tool("fetch", {"url": f"{gateway}/.well-known/l402.json"})

    result = run(body)
    assert not result.is_error, text(result)
    got = data(result)
    assert got["paid"] is False and got["receipt"] is None
    assert got["body_truncated"] is True
    assert got["body_bytes_shown"] == 64 and len(got["body"].encode()) == 64
    assert "cut at 64 bytes" in got["note"]


@contextmanager
def failing_upstream():
    """An API that answers every request with a 500."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"error":"the upstream fell over"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{upstream.server_address[1]}"
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_an_upstream_error_after_payment_keeps_the_receipt(tmp_path):
    with failing_upstream() as upstream:
        config = tmp_path / "gateway.toml"
        config.write_text(f'[[routes]]\npath = "/v1/broken"\nprice_sats = 5\nupstream = "{upstream}"\n')
        env = dict(clean_env(), PLANNT_DATA_DIR=str(tmp_path / "gateway"), PLANNT_CHALLENGES_PER_SECOND="0", RUST_LOG="info")
        gateway_process = Process(["serve", "--config", str(config), "--listen", "127.0.0.1:0", "--store", "memory",
                                   "--log-json"], env, "plannt gateway listening")
        gateway = f"http://{gateway_process.addr}"
        server = Mcp("stdio", gateway, tmp_path / "mcp", {})
        try:

            async def body():
                async with server.client() as client:
                    first = await client.call_tool("fetch", {"url": f"{gateway}/v1/broken"})
                    again = await client.call_tool("fetch", {"url": f"{gateway}/v1/broken"})
                    return first, again

            first, again = run(body)
            balance = server.balance()
        finally:
            server.stop()
            gateway_process.stop()

    assert first.is_error
    got = data(first)
    assert got["error"] == "upstream_error_after_payment"
    assert got["status"] == 500
    # A released answer never carries the upstream's body: the gateway says what happened.
    assert "the upstream fell over" not in got["body"]
    assert "your token was not used" in got["body"]
    check_receipt(got["receipt"], 5)
    assert got["receipt"]["preimage"] in text(first)
    # The gateway released the token: the second call presents it and pays nothing more.
    assert got["headers"]["x-l402"] == "released"
    assert "pays nothing more" in text(first)
    assert again.is_error
    assert data(again)["receipt"]["reused_token"] is True
    assert data(again)["receipt"]["payment_hash"] == got["receipt"]["payment_hash"]
    assert data(again)["paid"] is False
    assert balance == 1_000_000 - 5


# --- confirmation by a human (elicitation) -----------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_confirmed_payment_above_the_threshold_is_paid(start, transport, gateway, mode):
    server = start(transport)
    asked: list = []

    async def body():
        async with server.client(mode=mode, elicitation_callback=accepting(asked)) as client:
            version = client.protocol_version
            return version, await client.call_tool("fetch", {"url": f"{gateway}/v1/data"})

    version, result = run(body)
    assert version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert not result.is_error, text(result)
    assert data(result)["status"] == 200
    check_receipt(data(result)["receipt"], DATA_SATS)
    [question] = asked
    assert f"Pay {DATA_SATS} sats for GET {gateway}/v1/data?" in question.message
    assert "sats left this day" in question.message
    assert question.requested_schema["properties"]["confirm"]["type"] == "boolean"
    assert server.balance() == 1_000_000 - DATA_SATS


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_declined_payment_is_not_made(start, transport, gateway, mode):
    server = start(transport)
    asked: list = []

    async def body():
        async with server.client(mode=mode, elicitation_callback=declining(asked)) as client:
            fetched = await client.call_tool("fetch", {"url": f"{gateway}/v1/data"})
            spending = await client.call_tool("spending", {})
            return fetched, spending

    fetched, spending = run(body)
    assert len(asked) == 1
    assert fetched.is_error
    assert data(fetched)["error"] == "declined" and data(fetched)["paid"] is False
    assert "Nothing was paid" in text(fetched)
    assert server.balance() == 1_000_000
    assert data(spending)["recent_payments"] == []
    assert data(spending)["recent_refusals"][0]["check"] == "declined"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_payment_over_budget_is_refused_without_asking(start, gateway, mode):
    server = start("stdio", PLANNT_BUDGET_DAILY_SATS="90")
    asked: list = []

    async def body():
        async with server.client(mode=mode, elicitation_callback=accepting(asked)) as client:
            return await client.call_tool("fetch", {"url": f"{gateway}/v1/data"})

    result = run(body)
    assert asked == []
    assert result.is_error
    assert data(result)["error"] == "over_budget"
    assert (data(result)["window"], data(result)["left_sats"]) == ("day", 90)
    assert server.balance() == 1_000_000


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_client_that_cannot_ask_is_refused_above_the_threshold(start, gateway, mode):
    server = start("stdio")

    async def body():
        async with server.client(mode=mode) as client:
            above = await client.call_tool("fetch", {"url": f"{gateway}/v1/data"})
            below = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo"})
            return above, below

    above, below = run(body)
    assert above.is_error
    assert data(above)["error"] == "confirmation_unavailable"
    assert "PLANNT_CONFIRM_ABOVE_SATS" in text(above)
    # Below the threshold nothing needs asking.
    assert not below.is_error, text(below)
    assert server.balance() == 1_000_000 - DEMO_SATS


def test_no_threshold_pays_without_asking(start, gateway):
    server = start("stdio", PLANNT_CONFIRM_ABOVE_SATS="none")

    async def body():
        async with server.client() as client:
            return await client.call_tool("fetch", {"url": f"{gateway}/v1/data"})

    result = run(body)
    assert not result.is_error, text(result)
    check_receipt(data(result)["receipt"], DATA_SATS)


# --- bad calls ---------------------------------------------------------------------------------


def test_bad_calls_get_clear_errors_and_the_server_lives_on(start, transport, gateway):
    server = start(transport)

    async def body():
        out = {}
        async with server.client() as client:
            out["scheme"] = await client.call_tool("fetch", {"url": "ftp://example.com/x"})
            out["missing"] = await client.call_tool("fetch", {})
            out["type"] = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo", "max_sats": "lots"})
            out["unknown"] = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo", "maxSats": 1})
            out["method"] = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo", "method": "BREW"})
            out["header"] = await client.call_tool("fetch", {"url": f"{gateway}/v1/demo", "headers": {"bad name": "x"}})
            out["unreachable"] = await client.call_tool("fetch", {"url": "http://127.0.0.1:9/nothing"})
            with pytest.raises(MCPError):
                await client.call_tool("no_such_tool", {})
            out["after"] = {t.name for t in (await client.list_tools()).tools}
            out["spending"] = await client.call_tool("spending", {"limit": 3})
        return out

    out = run(body)
    assert out["after"] == TOOLS
    assert not out["spending"].is_error
    for name in ("scheme", "missing", "type", "unknown", "method", "header", "unreachable"):
        assert out[name].is_error, name
    assert "only http:// and https://" in text(out["scheme"])
    assert "url" in text(out["missing"])
    assert "max_sats" in text(out["type"]) or "invalid type" in text(out["type"])
    assert "maxSats" in text(out["unknown"])
    assert "BREW" in text(out["method"])
    assert "bad name" in text(out["header"])
    assert data(out["unreachable"])["error"] == "network_error"
    assert server.balance() == 1_000_000
