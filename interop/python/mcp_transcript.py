"""Records a real session with `plannt mcp`, as an agent would run it, for docs/mcp.md.

Starts a gateway (`plannt serve --store memory`, dev network) and `plannt mcp` on stdio, then
drives the PyPI `mcp` client through discover, balance, fetch (a payment below the
confirmation threshold, one above it that a human confirms through elicitation, and one that
max_sats refuses) and spending, and prints each call with its actual result as Markdown.

    .cache/venv/bin/python interop/python/mcp_transcript.py [--port 8402] > transcript.md

The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PLANNT_BIN", "target/debug/plannt")
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)

# Headers that change on every run and say nothing about Plannt.
NOISE = {"date", "vary", "access-control-allow-origin", "access-control-expose-headers"}


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PLANNT_")}


def start_gateway(port: int, data: str) -> subprocess.Popen:
    env = dict(clean_env(), PLANNT_DATA_DIR=data, PLANNT_CHALLENGES_PER_SECOND="0", RUST_LOG="warn")
    child = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--store", "memory"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
            return child
        except OSError:
            time.sleep(0.1)
    child.kill()
    sys.exit(f"plannt serve did not answer on port {port}")


def shown(result) -> str:
    """The result as the model gets it, with run-to-run noise (dates, CORS headers) left out."""
    if result.structured_content is None:
        return "\n".join(c.text for c in result.content if getattr(c, "text", None))
    value = dict(result.structured_content)
    if isinstance(value.get("headers"), dict):
        value["headers"] = {k: v for k, v in value["headers"].items() if k not in NOISE}
    return json.dumps(value, indent=2, ensure_ascii=False)


async def record(port: int, work: str) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    out: list[str] = []
    env = dict(
        clean_env(),
        PLANNT_DATA_DIR=os.path.join(work, "agent"),
        PLANNT_CONFIG_DIR=os.path.join(work, "config"),
        PLANNT_WALLET=f"dev+{base}?account=agent",
        PLANNT_BUDGET_HOURLY_SATS="500",
        PLANNT_BUDGET_DAILY_SATS="2000",
        PLANNT_MAX_SATS_PER_REQUEST="200",
        PLANNT_CONFIRM_ABOVE_SATS="50",
        # The demo gateway is on loopback, which `plannt mcp` refuses unless allowed.
        PLANNT_ALLOW_PRIVATE_NETWORKS="true",
        RUST_LOG="warn",
    )

    async def human(context, params):
        out.append("> **Elicitation shown to the human** (the client's form):\n>\n"
                   + "\n".join(f"> {line}" for line in params.message.splitlines())
                   + "\n>\n> The human answers **yes** (`{\"confirm\": true}`).\n")
        return types.ElicitResult(action="accept", content={"confirm": True})

    params = StdioServerParameters(command=BIN, args=["mcp"], env=env)
    async with Client(params, elicitation_callback=human) as client:
        out.append(f"Protocol negotiated by the client: `{client.protocol_version}`.\n")
        tools = (await client.list_tools()).tools
        out.append("`tools/list`: " + ", ".join(f"`{t.name}`" for t in tools) + ".\n")

        async def call(say: str, name: str, arguments: dict) -> None:
            if say:
                out.append(say + "\n")
            out.append(f"**Tool call** `{name}`\n\n```json\n{json.dumps(arguments, indent=2)}\n```\n")
            result = await client.call_tool(name, arguments)
            flag = " (isError)" if result.is_error else ""
            out.append(f"**Result**{flag}\n\n```json\n{shown(result)}\n```\n")

        await call(
            f"**User:** What does the API at {base} sell? Get me its demo answer and its data series.\n\n"
            "**Agent:** I'll look up its prices first; that costs nothing.",
            "discover", {"url": base + "/"})
        await call("**Agent:** And what I may spend:", "balance", {})
        await call("**Agent:** The demo costs 21 sats, under my limits. Fetching it:",
                   "fetch", {"url": f"{base}/v1/demo"})
        await call("**Agent:** The data series costs 100 sats, above the 50 sats I may pay "
                   "without asking, so Plannt asks you first.",
                   "fetch", {"url": f"{base}/v1/data"})
        await call("**User:** Fetch the demo again, but never pay more than 10 sats for it.",
                   "fetch", {"url": f"{base}/v1/demo", "max_sats": 10})
        await call("**Agent:** Nothing was paid for that one. Here is what I spent:",
                   "spending", {"limit": 5})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8402)
    args = parser.parse_args()
    if not os.path.isfile(BIN):
        sys.exit(f"{BIN} is missing: build it with `cargo build -p plannt` (or set PLANNT_BIN)")
    with tempfile.TemporaryDirectory(prefix="plannt-transcript-") as work:
        gateway = start_gateway(args.port, os.path.join(work, "gateway"))
        try:
            lines = anyio.run(record, args.port, work)
        finally:
            gateway.terminate()
            gateway.wait()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
