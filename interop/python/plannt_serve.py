"""`plannt serve` for the interop tests that give it a `plannt.toml`: started on a free loopback
port with the memory store and the dev network, in a data folder of the test's, and stopped again.

    with serve(CONFIG, work) as gateway:      # work: a folder of the test's own
        urllib.request.urlopen(f"{gateway.base}/openapi.json")

The binary comes from PLANNT_BIN (default `target/debug/plannt`, relative to the repository).
No PLANNT_* variable of the test's own environment reaches the gateway.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("PLANNT_BIN", "target/debug/plannt"))
if not BIN.is_absolute():
    BIN = REPO / BIN


def in_ci() -> bool:
    return os.environ.get("CI") in ("true", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(child: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within 10 s."""
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class Gateway(NamedTuple):
    """A running gateway: where it listens, and the environment it runs in (for `plannt`
    commands of the test that need the same settings)."""

    base: str
    env: dict


@contextmanager
def serve(config: str, work: Path, **settings: str) -> Iterator[Gateway]:
    """Writes `config` to `work/plannt.toml` and runs `plannt serve` on it (data in `work/data`,
    its log in `work/plannt.log`, `settings` as extra PLANNT_* variables) until it answers its
    catalog; fails the test if it exits or does not answer within 30 s."""
    if not BIN.is_file():
        pytest.fail(f"{BIN} is missing: build it with `cargo build -p plannt` (or set PLANNT_BIN)")
    path = work / "plannt.toml"
    path.write_text(config)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANNT_")}
    env.update(PLANNT_DATA_DIR=str(work / "data"), RUST_LOG="warn", **settings)
    log = work / "plannt.log"
    with open(log, "w") as out:
        child = subprocess.Popen(
            [str(BIN), "serve", "--config", str(path), "--listen", f"127.0.0.1:{port}",
             "--store", "memory"],
            env=env, stdout=subprocess.DEVNULL, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if child.poll() is not None:
                pytest.fail(f"plannt serve exited ({child.returncode}): {log.read_text()}")
            try:
                urllib.request.urlopen(f"{base}/.well-known/l402.json", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"plannt serve did not answer in 30 s: {log.read_text()}")
                time.sleep(0.1)
        yield Gateway(base, env)
    finally:
        stop(child)
