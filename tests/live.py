"""Real `dashvault serve` processes on loopback, for tests that need the whole server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dashvault(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a `dashvault` command against `data_dir`; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "dashvault.cli", *args],
        cwd=ROOT,
        env=server_env(data_dir, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def server_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHVAULT_")}
    env.update(
        {"DASHVAULT_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "dashvault.settings"}
    )
    env.update(extra or {})
    return env


def wait_for_port(
    process: subprocess.Popen[Any], port: int, log: Path, seconds: float = 60
) -> None:
    """Wait until the server process accepts connections on `port`; raise with its log if it
    exits or does not start in time."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate a server process, killing it if it does not stop within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Server:
    def __init__(self, process: subprocess.Popen[str], port: int, redirect_port: int, log: Path):
        self.process, self.port, self.redirect_port, self.log = process, port, redirect_port, log

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


@contextmanager
def running_server(
    data_dir: Path, env: dict[str, str] | None = None, redirect: bool = True
) -> Iterator[Server]:
    """Start `dashvault serve` on free loopback ports; wait until it accepts TLS; stop it after."""
    port, redirect_port = free_port(), (free_port() if redirect else 0)
    log = data_dir / f"server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dashvault.cli",
                "serve",
                "--port",
                str(port),
                "--redirect-port",
                str(redirect_port),
            ],
            cwd=ROOT,
            env=server_env(data_dir, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, port, redirect_port, log)
    try:
        wait_for_port(process, port, log)
        yield server
    finally:
        stop(process)
