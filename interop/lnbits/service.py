"""A throwaway LNbits for the tests: start it, fund it, stop it.

LNbits (PyPI `lnbits`) runs with its `FakeWallet` funding source: its invoices are real signed
BOLT11 (`lnbc…`), and a payment between two of its wallets settles at once with a real
preimage. No network is needed. Run this script with the Python of LNbits' own venv
(scripts/test installs it under the cache folder, from interop/lnbits/requirements.txt):

    $VENV/bin/python interop/lnbits/service.py start DIR   # prints the env file's path
    set -a; . DIR/env; set +a                               # then cargo test, pytest, …
    $VENV/bin/python interop/lnbits/service.py stop DIR

`start` picks a free loopback port, starts LNbits in its own process group with its data in
DIR/data and its output in DIR/lnbits.log, waits until it answers, creates two wallets (a
payee and a payer), credits the payer with LNbits' own admin top-up, and writes DIR/env:

    PLANNT_TEST_LNBITS_URL             http://127.0.0.1:PORT
    PLANNT_TEST_LNBITS_PAYEE_INKEY     the payee's invoice key (issues invoices)
    PLANNT_TEST_LNBITS_PAYEE_ADMINKEY  the payee's admin key
    PLANNT_TEST_LNBITS_PAYER_ADMINKEY  the payer's admin key (pays)
    PLANNT_TEST_LNBITS_PAYER_INKEY     the payer's invoice key

The top-up: LNbits 1.6 credits a wallet through `update_wallet_balance`
(lnbits/core/services/payments.py), which its admin API (`PUT /users/api/v1/balance`) calls,
but that API needs the admin UI and a super user with a password. So `start` runs the same
function in a child Python against the same data folder (SQLite): the credit is an internal
invoice marked paid, exactly what the admin UI's top-up records.

`stop` kills the process group whose leader's pid is in DIR/pid (LNbits runs its server in a
child process) and removes DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Sats credited to the payer: far more than the tests spend, far less than LNbits' limits.
PAYER_FUNDS_SATS = 1_000_000
# How long LNbits may take to answer after it is started (about 8 s on 2 cores).
START_TIMEOUT_SECS = 120
STOP_TIMEOUT_SECS = 10


def lnbits_env(data: Path) -> dict[str, str]:
    """LNbits' settings: FakeWallet, no admin UI, nothing fetched from the internet."""
    env = dict(os.environ)
    # Settings of an outer LNbits must not leak in.
    for key in list(env):
        if key.startswith("LNBITS_"):
            del env[key]
    env.update(
        LNBITS_DATA_FOLDER=str(data),
        LNBITS_BACKEND_WALLET_CLASS="FakeWallet",
        LNBITS_ADMIN_UI="false",
        # Offline: no exchange rates, no extension catalogues.
        LNBITS_PRICE_AGGREGATOR_ENABLED="false",
        LNBITS_EXCHANGE_RATE_PROVIDERS="[]",
        LNBITS_EXTENSIONS_MANIFESTS="[]",
        LNBITS_WASM_EXTENSIONS_MANIFESTS="[]",
        LNBITS_EXTENSIONS_DEFAULT_INSTALL="[]",
    )
    return env


def package_parent() -> Path:
    """The folder holding the installed `lnbits` package: LNbits needs `lnbits/static` there."""
    spec = importlib.util.find_spec("lnbits")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"service.py: `lnbits` is not installed for {sys.executable}")
    return Path(list(spec.submodule_search_locations)[0]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, method: str = "GET", body: dict | None = None, key: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("X-Api-Key", key)
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read() or b"null")


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def launch(folder: Path, port: int) -> subprocess.Popen:
    """Starts LNbits from inside its package folder, in a new process group."""
    server = Path(sys.executable).with_name("lnbits")
    command = [str(server)] if server.exists() else [sys.executable, "-c", "from lnbits.server import main; main()"]
    log = open(folder / "lnbits.log", "ab")  # noqa: SIM115 (handed to the child)
    return subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=package_parent(),
        env=lnbits_env(folder / "data"),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_up(process: subprocess.Popen, url: str, log: Path) -> bool:
    """True once LNbits answers; False if it exited (e.g. the port was taken meanwhile)."""
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            request(f"{url}/api/v1/health")
            return True
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.25)
    kill_group(process.pid)
    sys.exit(f"service.py: LNbits did not answer within {START_TIMEOUT_SECS} s:\n{log_tail(log)}")


def fund(folder: Path, wallet_id: str, sats: int) -> None:
    """Credits a wallet with LNbits' admin top-up, run in a child against the same data."""
    log = folder / "lnbits.log"
    with open(log, "ab") as out:
        done = subprocess.run(
            [sys.executable, __file__, "fund", wallet_id, str(sats)],
            cwd=folder,  # no stray .env is read from here
            env=lnbits_env(folder / "data"),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    if done.returncode != 0:
        sys.exit(f"service.py: funding the payer failed:\n{log_tail(log)}")


async def top_up(wallet_id: str, sats: int) -> None:
    from lnbits.core.crud import get_wallet
    from lnbits.core.services.payments import update_wallet_balance

    wallet = await get_wallet(wallet_id)
    if wallet is None:
        sys.exit(f"service.py fund: no wallet {wallet_id}")
    await update_wallet_balance(wallet=wallet, amount=sats)
    wallet = await get_wallet(wallet_id)
    print(f"service.py fund: wallet {wallet_id} now holds {wallet.balance_msat} msat", flush=True)


def start(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    log = folder / "lnbits.log"
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = launch(folder, port)
        (folder / "pid").write_text(f"{process.pid}\n")
        if wait_until_up(process, url, log):
            break
        kill_group(process.pid)
    else:
        sys.exit(f"service.py: LNbits exited at start three times:\n{log_tail(log)}")

    payee = request(f"{url}/api/v1/account", "POST", {"name": "plannt-payee"})
    payer = request(f"{url}/api/v1/account", "POST", {"name": "plannt-payer"})
    fund(folder, payer["id"], PAYER_FUNDS_SATS)
    balance = request(f"{url}/api/v1/wallet", key=payer["inkey"])["balance"]
    if balance != PAYER_FUNDS_SATS * 1000:
        sys.exit(f"service.py: the payer holds {balance} msat after the top-up, not {PAYER_FUNDS_SATS * 1000}")

    env = {
        "PLANNT_TEST_LNBITS_URL": url,
        "PLANNT_TEST_LNBITS_PAYEE_INKEY": payee["inkey"],
        "PLANNT_TEST_LNBITS_PAYEE_ADMINKEY": payee["adminkey"],
        "PLANNT_TEST_LNBITS_PAYER_ADMINKEY": payer["adminkey"],
        "PLANNT_TEST_LNBITS_PAYER_INKEY": payer["inkey"],
    }
    (folder / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    print(folder / "env")


def kill_group(pid: int) -> None:
    """Stops the process group LNbits leads (its server runs in a child process)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECS
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(folder: Path, keep: bool) -> None:
    pid_file = folder / "pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip())
        # Only a process group we started: its leader runs LNbits, or it is already gone.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if alive(pid) and b"lnbits" not in cmdline:
            sys.exit(f"service.py: pid {pid} in {pid_file} is not LNbits; not stopping it")
        kill_group(pid)
        pid_file.unlink(missing_ok=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start and fund LNbits; print the env file's path")
    p.add_argument("dir", type=Path, help="a folder for its data, log, pid and env file")
    p = sub.add_parser("stop", help="stop the LNbits started in DIR and remove DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--keep", action="store_true", help="keep DIR (its log and data)")
    p = sub.add_parser("fund", help="(internal) credit a wallet; needs LNbits' settings")
    p.add_argument("wallet_id")
    p.add_argument("sats", type=int)
    args = parser.parse_args()
    if args.command == "start":
        start(args.dir.resolve())
    elif args.command == "stop":
        stop(args.dir.resolve(), args.keep)
    else:
        asyncio.run(top_up(args.wallet_id, args.sats))


if __name__ == "__main__":
    main()
