#!/usr/bin/env python3
"""Prepaid sessions against single-use payments, in one run of `plannt serve` (dev network,
memory store, a metered route with `session`, in front of plannt-testkit's `openai-upstream`).

1. Requests per second: paid single-use L402 requests (tokens bought before the clock starts, so
   only the paid request is timed) against bearer requests of one session, the same chat request,
   the same client (threads, one keep-alive connection each). Goal: bearer at least as fast.
2. Tokens per second of one long stream (`stream=True`, include_usage) read through the gateway's
   meter (a session bearer request) against the same stream read from the upstream directly.
   Goal: at least 0.9x.

Usage: python3 bench/sessions.py [--requests 400] [--threads 8] [--streams 20]
Needs target/release (or PLANNT_BIN's folder) to hold `plannt` and `openai-upstream`.
"""

import argparse
import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("PLANNT_BIN", REPO / "target/release/plannt"))
UPSTREAM = Path(os.environ.get("OPENAI_UPSTREAM_BIN", BIN.parent / "openai-upstream"))

CONFIG = """
[[routes]]
id = "chat"
path = "/v1/chat/completions"
method = "POST"
upstream = "{upstream}"
price = {{ per = "openai-tokens", models = {{ "gpt-4o-mini" = {{ input_per_1k = 2, output_per_1k = 8 }} }}, default_max_tokens = 256, max_tokens_ceiling = 4096, min_sats = 1 }}
session = {{ deposit_sats = 500000, idle_secs = 3600 }}
"""

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three four five"}],
        "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def post(url: str, body: dict, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def pay(gateway: str, invoice: str) -> str:
    status, _, body = post(f"{gateway}/_plannt/dev/pay", {"invoice": invoice, "account": "bench"})
    assert status == 200, body
    return json.loads(body)["preimage"]


def session_challenge(headers) -> dict:
    for value in headers.get_all("WWW-Authenticate") or []:
        for challenge in re.split(r",\s*(?=Payment )", value):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            if params.get("intent") == "session":
                return params
    raise SystemExit("no session challenge")


def credential(challenge: dict, payload: dict) -> str:
    return "Payment " + b64url(json.dumps({"challenge": challenge, "payload": payload}).encode())


def rate(port: int, authorizations, threads: int) -> float:
    """Requests per second: each authorization sent once, over `threads` keep-alive connections."""
    body = json.dumps(CHAT).encode()
    queue = list(authorizations)
    lock = threading.Lock()
    failures = []

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                authorization = queue.pop()
            connection.request("POST", "/v1/chat/completions", body=body,
                               headers={"Content-Type": "application/json", "Authorization": authorization})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    count = len(queue)
    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {failures[:5]}")
    return count / elapsed


def stream_tokens_per_second(host: str, port: int, authorization, streams: int) -> float:
    words = " ".join(f"w{i}" for i in range(3000))
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": words}],
                       "max_tokens": 4096, "stream": True, "stream_options": {"include_usage": True}}).encode()
    tokens = 0
    elapsed = 0.0
    connection = http.client.HTTPConnection(host, port, timeout=60)
    for _ in range(streams):
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        started = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        elapsed += time.perf_counter() - started
        assert response.status == 200, text[:300]
        usage = [json.loads(d)["usage"] for d in re.findall(r"^data: (\{.*\})$", text, re.M)
                 if '"usage":{' in d]
        tokens += usage[-1]["completion_tokens"]
    connection.close()
    return tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--streams", type=int, default=20)
    args = parser.parse_args()
    upstream = subprocess.Popen([str(UPSTREAM), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    upstream_url = upstream.stdout.readline().strip().removeprefix("listening on ")
    with tempfile.TemporaryDirectory(prefix="plannt-sessions-") as work:
        config = Path(work) / "plannt.toml"
        config.write_text(CONFIG.format(upstream=upstream_url))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANNT_")}
        env.update(PLANNT_DATA_DIR=str(Path(work) / "data"), PLANNT_CHALLENGES_PER_SECOND="0",
                   RUST_LOG="warn")
        gateway = subprocess.Popen([str(BIN), "serve", "--config", str(config), "--listen",
                                    f"127.0.0.1:{port}", "--store", "memory"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/.well-known/l402.json", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            # Single-use tokens, bought before the clock starts.
            tokens = []
            for _ in range(args.requests):
                status, _, body = post(f"{base}/v1/chat/completions", CHAT)
                assert status == 402, body
                offer = json.loads(body)
                tokens.append(f"L402 {offer['macaroon']}:{pay(base, offer['invoice'])}")
            # One session, opened before the clock starts.
            status, headers, _ = post(f"{base}/v1/chat/completions", CHAT)
            challenge = session_challenge(headers)
            request = json.loads(unb64url(challenge["request"]))
            preimage = pay(base, request["depositInvoice"])
            status, _, body = post(f"{base}/_plannt/dev/return-invoices", {"account": "bench-refund"})
            opening = credential(challenge, {"action": "open", "preimage": preimage,
                                             "returnInvoice": json.loads(body)["bolt11"]})
            status, _, body = post(f"{base}/v1/chat/completions", CHAT, {"Authorization": opening})
            assert status == 200, body
            bearer = credential(challenge, {"action": "bearer", "sessionId": request["paymentHash"],
                                            "preimage": preimage})

            single = rate(port, tokens, args.threads)
            session = rate(port, [bearer] * args.requests, args.threads)
            direct_host, direct_port = upstream_url.removeprefix("http://").split(":")
            direct = stream_tokens_per_second(direct_host, int(direct_port), None, args.streams)
            metered = stream_tokens_per_second("127.0.0.1", port, bearer, args.streams)
        finally:
            gateway.terminate()
            gateway.wait()
            upstream.terminate()
            upstream.wait()
    print(f"single-use L402 paid requests: {single:8.0f} req/s")
    print(f"session bearer requests:       {session:8.0f} req/s  ({session / single:.2f}x; goal >= 1)")
    print(f"stream direct from upstream:   {direct:8.0f} tokens/s")
    print(f"stream through the meter:      {metered:8.0f} tokens/s  ({metered / direct:.2f}x; goal >= 0.9)")
    sys.exit(0 if session >= single and metered >= 0.9 * direct else 1)


if __name__ == "__main__":
    main()
