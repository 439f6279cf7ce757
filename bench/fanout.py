"""Fan-out: one dashboard update to 1,000 and 5,000 websocket screens on one server process.

Issue 3: the last screen has the update within 3x the time a plain `websockets.broadcast()`
server needs for the same payload and clients, and within 100 ms (1,000 screens) / 500 ms
(5,000); every screen gets every update; at most 64 KiB of memory per idle screen; 1,000
screens reconnecting at once (100 handshakes in flight) are all back within 10 s, no 5xx.

dashvault: dashvault's real ASGI application (dashvault.asgi: origin check, session cookie,
policy check, the live hub) under uvicorn with the websocket settings of `dashvault serve`,
in a server process of its own, embedded mode (SQLite). Each screen signs in with a real
session cookie and gets the dashboard's real data on connect. An update is triggered the way
a commit triggers it: from a worker thread, the already-serialized text goes through
`dashvault.live.publish.emit` (embedded mode: `call_soon_threadsafe` into the hub), and the
hub writes it to every local screen.

Reference: a plain `websockets` server (websockets.asyncio.server) in a process of its own;
an update is one `websockets.broadcast()` to every connection.

Both: plain TCP on loopback (no TLS, for both, so the comparison is of the websocket paths;
`dashvault serve` adds TLS in production), uvloop as the event loop (uvicorn's default, so
the reference gets it too: the stricter comparison), permessage-deflate offered by the
clients as browsers do, the same payload (a real dashboard update of under 512 bytes, with a
round number), the same client processes (`websockets` clients, several processes so that
one client process does not limit the measurement). Time is CLOCK_MONOTONIC, shared by all
processes on the machine: from the trigger in the server to the moment the last client holds
the message. Memory per idle screen: the server's RSS growth from a warmed-up server to N
connected idle screens, divided by N. Each N gets fresh server processes.

    .venv/bin/python bench/fanout.py            # 1,000 and 5,000 screens, 5 rounds each
    .venv/bin/python bench/fanout.py --quick    # 1,000 screens, 3 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

ROUND = re.compile(r'"round":(\d+)\}$')
PAYLOAD_LIMIT = 512
INFLIGHT = 100  # handshakes in flight across all client processes
TIME_RATIO, TIME_LIMIT = 3.0, {1000: 0.100, 5000: 0.500}
MEMORY_LIMIT = 64 * 1024
RECONNECT_LIMIT = 10.0
PER_CLIENT_PROCESS = 1250  # sockets per client process
SCRIPT = Path(__file__).resolve()


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


def with_round(base: str, number: int) -> str:
    return base[:-1] + f',"round":{number}}}'


async def control_server(port: int, go: Any) -> asyncio.Server:
    """Loopback line protocol of the server processes: "go <round>" → the trigger instant."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            number = int(line.split()[1])
            writer.write(f"{await go(number)!r}\n".encode())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


# --- server processes --------------------------------------------------------------------------


def serve_reference(port: int, control: int, payload_file: str) -> None:
    """The reference: websockets' own server; an update is one broadcast()."""
    from websockets.asyncio.server import broadcast, serve

    raise_nofile()
    base = Path(payload_file).read_text()
    connections: set[Any] = set()

    async def handler(websocket: Any) -> None:
        # The same state as a dashvault screen: it got the dashboard's data on connect.
        await websocket.send(base)
        connections.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            connections.discard(websocket)

    async def go(number: int) -> float:
        text = with_round(base, number)
        started = time.monotonic()
        broadcast(connections, text)
        return started

    async def main() -> None:
        # The websocket options dashvault's server runs with (UVICORN_WS_OPTIONS): no
        # compression, small messages; keepalive pings every 20 s like uvicorn's.
        async with serve(
            handler, "127.0.0.1", port, ping_interval=20, compression=None, max_size=4096
        ):
            await control_server(control, go)
            await asyncio.Future()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


def serve_dashvault(data_dir: str, port: int, control: int, dashboard_id: str) -> None:
    """dashvault's ASGI application under uvicorn, configured as `dashvault serve` runs it
    (dashvault.server.run.serve) but without TLS; updates enter through publish.emit."""
    raise_nofile()
    c.setup_django(Path(data_dir))
    import uvicorn

    from dashvault.live import UVICORN_WS_OPTIONS, publish
    from dashvault.live.publish import emit

    base = publish.render_by_id(dashboard_id)
    assert base is not None
    config = uvicorn.Config(
        "dashvault.asgi:application",
        host="127.0.0.1",
        port=port,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
        **UVICORN_WS_OPTIONS,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)

    def commit_thread(number: int) -> float:
        # As a commit's on_commit hook runs: the text is built, then handed to every process.
        text = with_round(base, number)
        started = time.monotonic()
        emit("data", {"d": dashboard_id}, text)
        return started

    async def go(number: int) -> float:
        return await asyncio.to_thread(commit_thread, number)

    async def main() -> None:
        await control_server(control, go)
        await server.serve()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


# --- client processes --------------------------------------------------------------------------


def run_clients(url: str, count: int, inflight: int, cookie: str, origin: str, snapshot: bool):
    """`count` websocket clients in this process. Commands on stdin, results as JSON lines."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    raise_nofile()
    headers = {"Cookie": cookie} if cookie else {}
    received: Counter[int] = Counter()
    last: dict[int, float] = {}
    done: dict[int, asyncio.Event] = {}
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []

    async def reader(websocket: Any) -> None:
        try:
            async for message in websocket:
                match = ROUND.search(message)
                if match is None:
                    continue
                number, now = int(match[1]), time.monotonic()
                received[number] += 1
                last[number] = max(last.get(number, 0.0), now)
                if received[number] == count:
                    done.setdefault(number, asyncio.Event()).set()
        except Exception:  # noqa: S110  a closed socket simply stops counting
            pass

    async def open_all() -> Counter[str]:
        gate = asyncio.Semaphore(inflight)
        errors: Counter[str] = Counter()

        async def open_one() -> None:
            async with gate:
                try:
                    websocket = await connect(
                        url,
                        origin=origin,  # type: ignore[arg-type]
                        additional_headers=headers,
                        open_timeout=60,
                        ping_interval=None,  # the server pings (uvicorn's keepalive)
                        max_queue=None,
                    )
                    if snapshot:  # dashvault sends the dashboard's data at once
                        first = await asyncio.wait_for(websocket.recv(), 60)
                        assert json.loads(first)["type"] == "data"
                except InvalidStatus as exc:
                    errors[f"http {exc.response.status_code}"] += 1
                    return
                except Exception as exc:
                    errors[type(exc).__name__] += 1
                    return
            sockets.append(websocket)
            readers.append(asyncio.create_task(reader(websocket)))

        await asyncio.gather(*(open_one() for _ in range(count)))
        return errors

    async def close_all() -> None:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)
        sockets.clear()
        readers.clear()

    def say(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    async def main() -> None:
        errors = await open_all()
        say(ready=len(sockets), errors=errors)
        while command := (await asyncio.to_thread(sys.stdin.readline)).split():
            if command[0] == "round":
                number = int(command[1])
                try:
                    await asyncio.wait_for(done.setdefault(number, asyncio.Event()).wait(), 15)
                except TimeoutError:
                    pass
                say(round=number, got=received[number], last=last.get(number))
            elif command[0] == "reconnect":
                await close_all()
                started = time.monotonic()
                errors = await open_all()
                say(back=len(sockets), errors=errors, seconds=time.monotonic() - started)
            elif command[0] == "quit":
                break
        await close_all()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


# --- the orchestrator --------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_json(process: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    """The next JSON line of a client process, within `seconds`."""
    result: dict[str, Any] = {}

    def read() -> None:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line:
            result.update(json.loads(line))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    if not result:
        raise RuntimeError("a client process did not answer in time")
    return result


class Target:
    """One server under test: how to start it and how clients reach it."""

    def __init__(self, name: str, args: list[str], port: int, control: int, path: str) -> None:
        self.name, self.args, self.port, self.control, self.path = name, args, port, control, path
        self.cookie = ""
        self.snapshot = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def measure(target: Target, n: int, rounds: int, reconnect: bool, log: Path) -> dict[str, Any]:
    env = dict(os.environ)
    with c.process_server(target.args, target.port, log, env) as server:
        # Warm up (code paths, database connection, caches), then the baseline.
        warm = clients(target, 10, 10)
        read_json(warm, 60)
        quit_clients([warm])
        time.sleep(0.5)
        baseline = rss(server.pid)

        per_process = [PER_CLIENT_PROCESS] * (n // PER_CLIENT_PROCESS)
        if n % PER_CLIENT_PROCESS:
            per_process.append(n % PER_CLIENT_PROCESS)
        share = max(1, INFLIGHT // len(per_process))
        procs = [clients(target, k, share) for k in per_process]
        started, cpu = time.monotonic(), cpu_seconds(server.pid)
        ready = [read_json(p, 300) for p in procs]
        connect_seconds = time.monotonic() - started
        connect_cpu = (cpu_seconds(server.pid) - cpu) / n
        connected = sum(r["ready"] for r in ready)
        time.sleep(1.0)  # let the last handshakes' garbage settle
        idle = rss(server.pid)

        latencies, complete = [], True
        with socket.create_connection(("127.0.0.1", target.control)) as control:
            stream = control.makefile("rw")
            for number in range(1, rounds + 1):
                time.sleep(0.3)
                stream.write(f"go {number}\n")
                stream.flush()
                trigger = float(stream.readline())
                results = []
                for p in procs:
                    assert p.stdin is not None
                    p.stdin.write(f"round {number}\n")
                    p.stdin.flush()
                results = [read_json(p, 60) for p in procs]
                got = sum(r["got"] for r in results)
                complete = complete and got == n
                if results and all(r["last"] is not None for r in results):
                    latencies.append(max(r["last"] for r in results) - trigger)
        back = None
        if reconnect:
            cpu = cpu_seconds(server.pid)
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("reconnect\n")
                p.stdin.flush()
            answers = [read_json(p, 120) for p in procs]
            back = {
                "cpu": (cpu_seconds(server.pid) - cpu) / n,
                "back": sum(a["back"] for a in answers),
                "seconds": max(a["seconds"] for a in answers),
                "errors": sum((Counter(a["errors"]) for a in answers), Counter()),
            }
        quit_clients(procs)
    return {
        "connected": connected,
        "connect_errors": sum((Counter(r["errors"]) for r in ready), Counter()),
        "connect_seconds": connect_seconds,
        "connect_cpu": connect_cpu,
        "per_socket": (idle - baseline) / n,
        "latencies": latencies,
        "median": statistics.median(latencies) if latencies else float("inf"),
        "worst": max(latencies) if latencies else float("inf"),
        "complete": complete and len(latencies) == rounds,
        "reconnect": back,
    }


def clients(target: Target, count: int, inflight: int) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        str(SCRIPT),
        "clients",
        target.url,
        str(count),
        str(inflight),
        target.cookie,
        target.origin,
        "1" if target.snapshot else "0",
    ]
    # This very script with arguments built here: nothing from outside reaches the command.
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: S603


def quit_clients(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        try:
            assert p.stdin is not None
            p.stdin.write("quit\n")
            p.stdin.flush()
        except OSError:
            pass
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def prepare(data_dir: Path) -> tuple[str, str, str]:
    """A migrated data directory with an org, a viewer granted a dashboard with two KPIs on a
    metric with data, and the viewer's signed-in session; returns (dashboard id, session
    cookie, payload)."""
    c.migrate(data_dir)
    c.setup_django(data_dir)
    from django.test import Client
    from django.utils import timezone

    from dashvault.accounts.models import Role, User
    from dashvault.dashboards.models import Dashboard, Widget
    from dashvault.live.publish import render
    from dashvault.metrics.ingest import PointIn, do_ingest
    from dashvault.metrics.models import Metric
    from dashvault.orgs.models import Group, Organization

    org = Organization.objects.create(name="Bench", time_zone="UTC")
    viewer = User.objects.create_user("viewer@bench.example", org=org, role=Role.VIEWER)
    metric = Metric.objects.create(org=org, key="deals", name="Deals won")
    dashboard = Dashboard.objects.create(org=org, title="Sales floor")
    for index, period in enumerate(("today", "this_month")):
        Widget.objects.create(
            org=org,
            dashboard=dashboard,
            kind="kpi",
            metric=metric,
            config={"period": period},
            x=index * 6,
        )
    group = Group.objects.create(org=org, name="Everyone")
    group.members.add(viewer)
    group.dashboards.add(dashboard)
    do_ingest(org, [PointIn("deals", timezone.now(), 3.0)])
    browser = Client()
    browser.force_login(viewer)
    cookie = f"__Host-dv_session={browser.cookies['__Host-dv_session'].value}"
    return str(dashboard.pk), cookie, render(dashboard)


def serve_uses_ws_options() -> bool:
    """Whether `dashvault serve` passes UVICORN_WS_OPTIONS to uvicorn (what this measures)."""
    return "UVICORN_WS_OPTIONS" in (c.ROOT / "dashvault" / "server" / "run.py").read_text()


def orchestrate(quick: bool, keep: bool) -> int:
    raise_nofile()
    sizes = (1000,) if quick else (1000, 5000)
    rounds = 3 if quick else 5
    checks: list[c.Check] = []
    notes: list[str] = []
    rows: list[list[str]] = []
    with c.scratch_dir("fanout", keep=keep) as scratch:
        data_dir = scratch / "data"
        dashboard_id, cookie, payload = prepare(data_dir)
        size = len(with_round(payload, 99).encode())
        if size > PAYLOAD_LIMIT:
            raise SystemExit(f"payload of {size} bytes exceeds {PAYLOAD_LIMIT}")
        payload_file = scratch / "payload.json"
        payload_file.write_text(payload)
        notes.append(f"payload: a real dashboard update, {size} bytes; {rounds} rounds per N")

        for n in sizes:
            results = {}
            for name in ("reference", "dashvault"):
                port, control = c.free_port(), c.free_port()
                if name == "reference":
                    args = [sys.executable, str(SCRIPT), "serve-reference", str(port)]
                    args += [str(control), str(payload_file)]
                    target = Target(name, args, port, control, "/")
                    target.snapshot = True  # it sends the same payload on connect
                else:
                    args = [sys.executable, str(SCRIPT), "serve-dashvault", str(data_dir)]
                    args += [str(port), str(control), dashboard_id]
                    target = Target(name, args, port, control, f"/ws/dashboards/{dashboard_id}/")
                    target.cookie, target.snapshot = cookie, True
                print(f"{name}: {n} clients ...", flush=True)
                results[name] = measure(
                    target,
                    n,
                    rounds,
                    name == "dashvault" and n == 1000,
                    scratch / f"{name}-{n}.log",
                )
            ref, dv = results["reference"], results["dashvault"]
            for name, r in results.items():
                rows.append(
                    [
                        f"{name} N={n}",
                        f"{r['connected']}/{n}",
                        f"{r['connect_seconds']:.1f} s",
                        f"{r['connect_cpu'] * 1000:.2f} ms",
                        " ".join(f"{x * 1000:.0f}" for x in r["latencies"]),
                        c.ms(r["median"]),
                        "yes" if r["complete"] else "NO",
                        f"{r['per_socket'] / 1024:.1f} KiB",
                    ]
                )
            ratio = dv["median"] / ref["median"]
            checks.append(
                c.Check(
                    f"last of {n} screens has the update (median)",
                    c.ms(dv["median"]),
                    c.ms(ref["median"]),
                    f"{ratio:.2f}",
                    f"<= {TIME_RATIO:.0f}x and <= {TIME_LIMIT[n] * 1000:.0f} ms",
                    ratio <= TIME_RATIO and dv["median"] <= TIME_LIMIT[n],
                )
            )
            checks.append(
                c.Check(
                    f"every one of {n} screens got every update",
                    f"{dv['connected']}/{n}, {'all' if dv['complete'] else 'NOT all'}",
                    f"{ref['connected']}/{n}, {'all' if ref['complete'] else 'NOT all'}",
                    "-",
                    "all connected, all rounds",
                    dv["complete"] and dv["connected"] == n and not dv["connect_errors"],
                )
            )
            checks.append(
                c.Check(
                    f"memory per idle screen (N={n})",
                    f"{dv['per_socket'] / 1024:.1f} KiB",
                    f"{ref['per_socket'] / 1024:.1f} KiB",
                    f"{dv['per_socket'] / max(ref['per_socket'], 1):.2f}",
                    f"<= {MEMORY_LIMIT // 1024} KiB",
                    dv["per_socket"] <= MEMORY_LIMIT,
                )
            )
            back = dv["reconnect"]
            if back is not None:
                server_errors = sum(v for k, v in back["errors"].items() if k.startswith("http 5"))
                checks.append(
                    c.Check(
                        f"{n} screens reconnect at once ({INFLIGHT} in flight)",
                        f"{back['back']}/{n} in {back['seconds']:.2f} s",
                        "-",
                        "-",
                        f"all within {RECONNECT_LIMIT:.0f} s, no 5xx",
                        back["back"] == n
                        and back["seconds"] <= RECONNECT_LIMIT
                        and server_errors == 0,
                    )
                )
                notes.append(
                    f"reconnect: {back['cpu'] * 1000:.2f} ms of server CPU per handshake "
                    f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
                )
                if back["errors"]:
                    notes.append(f"reconnect errors: {dict(back['errors'])}")
            for name, r in results.items():
                if r["connect_errors"]:
                    notes.append(f"{name} N={n} connect errors: {dict(r['connect_errors'])}")

    print("\n== fan-out runs (time: trigger in the server → last client holds the message) ==")
    c.print_table(
        (
            "server",
            "connected",
            "connect",
            "server CPU/handshake",
            "rounds (ms)",
            "median",
            "all got all",
            "RSS/screen",
        ),
        rows,
    )
    from dashvault.live import UVICORN_WS_OPTIONS

    checks.append(
        c.Check(
            "`dashvault serve` runs with the measured websocket options",
            "yes" if serve_uses_ws_options() else "no",
            "-",
            "-",
            "dashvault.server.run passes UVICORN_WS_OPTIONS",
            serve_uses_ws_options(),
        )
    )
    notes.append(f"server websocket options (both servers): {UVICORN_WS_OPTIONS}")
    notes.append("plain TCP on loopback for both servers (no TLS), uvloop for both")
    notes.append(f"clients: websockets, {PER_CLIENT_PROCESS} per process, deflate offered")
    return c.finish("fan-out", checks, notes)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-reference":
        serve_reference(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "serve-dashvault":
        serve_dashvault(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "clients":
        url, count, inflight, cookie, origin, snapshot = sys.argv[2:8]
        run_clients(url, int(count), int(inflight), cookie, origin, snapshot == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 screens, 3 rounds")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args()
    return orchestrate(options.quick, options.keep)


if __name__ == "__main__":
    sys.exit(main())
