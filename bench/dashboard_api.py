"""Dashboard API: the batched widget data of a 20-widget dashboard, signed in, at 32 clients.

Issue 3: `GET /dashboards/<uuid>/data/` (every widget's data in one request) serves at least
40% of the requests per second of a trivial Django JSON view served the same way, with a p95
latency at most twice that view's.

dashvault: a real `dashvault serve` (uvicorn, HTTPS, dashvault.asgi.Router: Django's WSGI
handler on an a2wsgi thread pool) on loopback, with an organization in UTC, four metrics (a
year of points, eight reps, rollups built from them), and a dashboard of 20 widgets (4 KPIs,
4 line and 4 bar charts, 3 leaderboards, 3 gauges, 2 texts) granted to a viewer's group. The
viewer signs in through /accounts/login/ with `requests` (CSRF cookie, form token, Referer);
the load generator sends that session cookie.

Reference: bench/_trivial_app.py, a one-view Django with minimal settings behind the same
Router, under uvicorn with the same settings, TLS certificate and ciphers. For information,
the same trivial view behind Django's own ASGI handler (why dashvault uses the WSGI handler).

Load: `wrk` (Debian's; installed with apt-get when missing and running as root), one thread,
32 keep-alive connections, a warm-up run then a fixed-duration run per server, one server
at a time; a Lua script reports p95 and counts every response that is not 200. A run with
any error or non-200 answer is invalid and fails.

    .venv/bin/python bench/dashboard_api.py           # 3 s warm-up + 10 s per server
    .venv/bin/python bench/dashboard_api.py --quick   # 1 s + 4 s (trial runs)
    .venv/bin/python bench/dashboard_api.py --path '/dashboards/{id}/'   # another page
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as c
import requests

TARGET_THROUGHPUT = 0.40
TARGET_P95 = 2.0
CONNECTIONS = 32
PASSWORD = "bench correct horse battery staple"  # noqa: S105  (throwaway account)
DATA_PATH = "/dashboards/{id}/data/"

METRICS: dict[str, dict[str, Any]] = {
    "revenue": {"name": "Revenue", "unit": "currency", "currency": "EUR", "aggregation": "sum"},
    "deals": {"name": "Deals won", "unit": "number", "aggregation": "count"},
    "calls": {"name": "Calls", "unit": "number", "aggregation": "sum"},
    "pipeline": {
        "name": "Pipeline",
        "unit": "currency",
        "currency": "EUR",
        "aggregation": "latest",
    },
}
# (title, kind, metric key, options): 20 widgets of a sales dashboard.
WIDGETS: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("Revenue this month", "kpi", "revenue", {"period": "this_month", "target": 250_000.0}),
    ("Deals won this month", "kpi", "deals", {"period": "this_month", "target": 400.0}),
    ("Calls today", "kpi", "calls", {"period": "today"}),
    ("Pipeline", "kpi", "pipeline", {"period": "last_30_days"}),
    ("Revenue by day", "line", "revenue", {"period": "last_12_months", "bucket": "day"}),
    (
        "Revenue by rep, 90 days",
        "line",
        "revenue",
        {"period": "last_90_days", "bucket": "day", "by_dimension": True},
    ),
    ("Calls by day", "line", "calls", {"period": "last_30_days", "bucket": "day"}),
    ("Deals by week", "line", "deals", {"period": "last_12_months", "bucket": "week"}),
    ("Revenue by month", "bar", "revenue", {"period": "last_12_months", "bucket": "month"}),
    (
        "Deals by rep this quarter",
        "bar",
        "deals",
        {"period": "this_quarter", "bucket": "month", "by_dimension": True},
    ),
    ("Calls by month", "bar", "calls", {"period": "this_year", "bucket": "month"}),
    ("Pipeline by month", "bar", "pipeline", {"period": "last_12_months", "bucket": "month"}),
    ("Top reps by revenue", "leaderboard", "revenue", {"period": "this_year", "top_n": 5}),
    ("Top reps by deals", "leaderboard", "deals", {"period": "this_month", "top_n": 8}),
    ("Top callers", "leaderboard", "calls", {"period": "last_30_days", "top_n": 5}),
    ("Quarter revenue", "gauge", "revenue", {"period": "this_quarter", "target": 1_000_000.0}),
    ("Deals this month", "gauge", "deals", {"period": "this_month", "target": 400.0}),
    ("Calls this week", "gauge", "calls", {"period": "this_week", "target": 5_000.0}),
    ("Quarter goals", "text", None, {"text": "Close 400 deals a month; keep calls above 5k."}),
    ("Welcome", "text", None, {"text": "Sales floor screen. Data refreshes live."}),
]

# Prints one JSON line at the end; counts answers other than 200 (wrk itself counts only
# >= 400 as errors, so a redirect to the sign-in page would otherwise look like success).
WRK_SCRIPT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body) if status ~= 200 then bad = bad + 1 end end
function done(summary, latency, requests)
  local non200 = 0
  for _, t in ipairs(threads) do non200 = non200 + (t:get("bad") or 0) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, ' ..
    '"p95_us": %d, "p99_us": %d, "max_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "non200": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    non200))
end
"""


@dataclass
class Load:
    """One wrk run's summary."""

    name: str
    requests: int
    seconds: float
    bytes: int
    p50: float
    p95: float
    p99: float
    errors: int
    non200: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.errors == 0 and self.non200 == 0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    print("installing wrk (Debian package)...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    def apt_get(*args: str) -> int:
        done = subprocess.run(  # noqa: S603  (fixed command)
            ["apt-get", *args],  # noqa: S607  (the system's apt-get)
            env=env,
            stdout=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
        return done.returncode

    if apt_get("install", "-y", "-q", "wrk") != 0:
        apt_get("update", "-q")  # the package lists may be missing or old
        apt_get("install", "-y", "-q", "wrk")
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def run_wrk(
    wrk: str, script: Path, name: str, url: str, seconds: int, headers: dict[str, str]
) -> Load:
    args = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script)]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    done = subprocess.run(  # noqa: S603  (fixed arguments)
        [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    s = json.loads(line.removeprefix("BENCH_JSON "))
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    return Load(
        name,
        s["requests"],
        s["duration_us"] / 1e6,
        s["bytes"],
        s["p50_us"] / 1e6,
        s["p95_us"] / 1e6,
        s["p99_us"] / 1e6,
        errors,
        s["non200"],
    )


def measure(
    wrk: str, script: Path, name: str, url: str, args: argparse.Namespace, headers: dict[str, str]
) -> Load:
    run_wrk(wrk, script, name, url, args.warmup, headers)
    load = run_wrk(wrk, script, name, url, args.duration, headers)
    print(
        f"{name}: {load.rate:,.0f} req/s, p95 {c.ms(load.p95)}, {load.requests:,} requests, "
        f"{load.errors} errors, {load.non200} not 200",
        flush=True,
    )
    return load


def build_data(points_per_metric: int) -> tuple[str, str]:
    """The organization, viewer, metrics, points, rollups and dashboard; returns (dashboard
    id, viewer e-mail). Django must be set up against the data directory."""
    from django.db import connection
    from django.utils import timezone

    from dashvault.accounts.models import Role, User
    from dashvault.dashboards.models import Dashboard, Widget
    from dashvault.dashboards.widgets import validate_config
    from dashvault.metrics.models import Metric
    from dashvault.orgs.models import Group, Organization

    org = Organization.objects.create(name="Bench dashboards", time_zone="UTC")
    email = "viewer@bench.example"
    viewer = User.objects.create_user(email, PASSWORD, org=org, role=Role.VIEWER)
    metrics = {
        key: Metric.objects.create(org=org, key=key, **spec) for key, spec in METRICS.items()
    }
    dashboard = Dashboard.objects.create(org=org, title="Sales floor")
    for index, (title, kind, key, options) in enumerate(WIDGETS):
        metric = metrics[key] if key else None
        Widget.objects.create(
            org=org,
            dashboard=dashboard,
            kind=kind,
            title=title,
            metric=metric,
            config=validate_config(kind, options, has_metric=metric is not None),
            x=(index % 3) * 4,
            y=(index // 3) * 2,
        )
    group = Group.objects.create(org=org, name="Sales floor")
    group.members.set([viewer])
    group.dashboards.set([dashboard])
    db = Path(connection.settings_dict["NAME"])
    connection.close()

    today = timezone.now().date()
    for seed, metric in enumerate(metrics.values()):
        scale = {"revenue": 900.0, "deals": 1.0, "calls": 10.0, "pipeline": 50_000.0}[metric.key]
        c.bulk_insert_points(
            db,
            c.year_of_points(
                org.pk.hex, metric.pk.hex, points_per_metric, today, scale=scale, seed=seed
            ),
        )
        c.build_rollups_utc(db, org.pk.hex, metric.pk.hex)
    return str(dashboard.pk), email


def sign_in(url: str, cert: str, email: str) -> requests.Session:
    """A session signed in through the real sign-in form (CSRF cookie, token and Referer)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = cert
    form = session.get(f"{url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if form.status_code != 200 or not token:
        raise RuntimeError(f"sign-in form: {form.status_code}")
    answer = session.post(
        f"{url}/accounts/login/",
        data={"login": email, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{url}/accounts/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302 or not session.cookies.get("__Host-dv_session"):
        raise RuntimeError(f"sign-in failed: {answer.status_code}")
    return session


def probe(session: requests.Session, url: str) -> tuple[int, int | None]:
    """(status, number of widgets in the JSON answer or None)."""
    answer = session.get(url, allow_redirects=False, timeout=30)
    widgets = None
    if answer.status_code == 200 and answer.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        widgets = len(answer.json().get("widgets", ()))
    return answer.status_code, widgets


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s warm-up, 4 s runs")
    parser.add_argument("--duration", type=int, help="seconds of each measured run (10)")
    parser.add_argument("--warmup", type=int, help="seconds of each warm-up run (3)")
    parser.add_argument("--points", type=int, default=100_000, help="raw points per metric")
    parser.add_argument(
        "--path", default=DATA_PATH, help=f"dashvault path, {{id}}: dashboard ({DATA_PATH})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    args.duration = args.duration or (4 if args.quick else 10)
    args.warmup = args.warmup or (1 if args.quick else 3)
    wrk = ensure_wrk()

    with c.scratch_dir("api", keep=args.keep) as root:
        data_dir = root / "app"
        c.migrate(data_dir)
        c.setup_django(data_dir)
        from django.conf import settings
        from django.db import connection

        from dashvault.server.run import tls_files

        dashboard_id, email = build_data(args.points)
        cert, key = tls_files()  # the pair `dashvault serve` will use, made now
        connection.close()
        script = root / "report.lua"
        script.write_text(WRK_SCRIPT)
        path = args.path.format(id=dashboard_id)

        loads: dict[str, Load] = {}
        with c.dashvault_server(data_dir) as url:
            session = sign_in(url, cert, email)
            cookie = f"__Host-dv_session={session.cookies['__Host-dv_session']}"
            before = probe(session, f"{url}{path}")
            detail = probe(session, f"{url}/dashboards/{dashboard_id}/")
            print(f"GET {path}: {before[0]}, widgets in answer: {before[1]}", flush=True)
            port = url.rsplit(":", 1)[1]
            servers = {}
            for handler in ("wsgi", "asgi"):
                servers[handler] = c.free_port()
            with (
                trivial_server(root, "wsgi", servers["wsgi"], cert, key, settings.HTTP_THREADS),
                trivial_server(root, "asgi", servers["asgi"], cert, key, settings.HTTP_THREADS),
            ):
                for handler, trivial_port in servers.items():
                    answer = session.get(f"https://localhost:{trivial_port}/trivial/", timeout=30)
                    if answer.status_code != 200:
                        raise RuntimeError(f"trivial {handler}: {answer.status_code}")
                if before[0] == 200:
                    loads["dashvault"] = measure(
                        wrk,
                        script,
                        "dashvault " + args.path,
                        f"https://127.0.0.1:{port}{path}",
                        args,
                        {"Cookie": cookie},
                    )
                loads["wsgi"] = measure(
                    wrk,
                    script,
                    "trivial view, dashvault's stack (WSGI)",
                    f"https://127.0.0.1:{servers['wsgi']}/trivial/",
                    args,
                    {},
                )
                loads["asgi"] = measure(
                    wrk,
                    script,
                    "trivial view, Django's ASGI handler",
                    f"https://127.0.0.1:{servers['asgi']}/trivial/",
                    args,
                    {},
                )
            after = probe(session, f"{url}{path}")
        return report(args, path, before, after, detail, loads)


def trivial_server(root: Path, handler: str, port: int, cert: str, key: str, threads: int) -> Any:
    args = [
        sys.executable,
        str(Path(__file__).with_name("_trivial_app.py")),
        "--handler",
        handler,
        "--port",
        str(port),
        "--cert",
        cert,
        "--key",
        key,
        "--threads",
        str(threads),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHVAULT_", "DJANGO_"))}
    return c.process_server(args, port, root / f"trivial-{handler}.log", env)


def report(
    args: argparse.Namespace,
    path: str,
    before: tuple[int, int | None],
    after: tuple[int, int | None],
    detail: tuple[int, int | None],
    loads: dict[str, Load],
) -> int:
    wsgi, asgi = loads["wsgi"], loads["asgi"]
    print(
        f"\n{CONNECTIONS} keep-alive connections, wrk -t1, "
        f"{args.warmup} s warm-up + {args.duration} s"
    )
    c.print_table(
        ("server", "req/s", "p50", "p95", "p99", "requests", "KB/answer", "errors", "not 200"),
        [
            (
                load.name,
                f"{load.rate:,.0f}",
                c.ms(load.p50),
                c.ms(load.p95),
                c.ms(load.p99),
                f"{load.requests:,}",
                f"{load.bytes / max(1, load.requests) / 1024:.1f}",
                load.errors,
                load.non200,
            )
            for load in loads.values()
        ],
    )
    print(
        "for information: Django's ASGI handler served the trivial view at "
        f"{asgi.rate / wsgi.rate:.2f}x the rate of dashvault's WSGI-on-a2wsgi stack "
        f"(p95 {asgi.p95 / wsgi.p95:.1f}x); NOTES measured about a fifth (ASGI vs gunicorn)."
    )
    notes = []
    is_data_endpoint = args.path == DATA_PATH
    expected_widgets = len(WIDGETS) if is_data_endpoint else None
    checks = [
        c.Check(
            f"GET {args.path} answers 200"
            + (f" with {len(WIDGETS)} widgets" if is_data_endpoint else ""),
            f"{before[0]}, {before[1]} widgets",
            "-",
            "-",
            f"200{', ' + str(len(WIDGETS)) if is_data_endpoint else ''}",
            before[0] == 200 and before[1] == expected_widgets and after[0] == 200,
        )
    ]
    if before[0] == 404 and detail[0] == 200:
        notes.append(
            f"{path} is 404 while the dashboard page answers 200: the batched widget-data "
            "endpoint is not there yet (dashvault/dashboards/views.py). Nothing was measured "
            "for dashvault; the reference numbers above stand alone."
        )
    if not is_data_endpoint:
        notes.append(f"measured {args.path}, a stand-in, not the issue's endpoint {DATA_PATH}")
    dash = loads.get("dashvault")
    if dash is not None:
        rate_ratio = dash.rate / wsgi.rate
        p95_ratio = dash.p95 / wsgi.p95
        checks += [
            c.Check(
                "throughput vs trivial view",
                f"{dash.rate:,.0f} req/s",
                f"{wsgi.rate:,.0f} req/s",
                c.ratio(rate_ratio),
                f">= {TARGET_THROUGHPUT}",
                rate_ratio >= TARGET_THROUGHPUT,
            ),
            c.Check(
                "p95 latency vs trivial view",
                c.ms(dash.p95),
                c.ms(wsgi.p95),
                c.ratio(p95_ratio),
                f"<= {TARGET_P95}",
                p95_ratio <= TARGET_P95,
            ),
        ]
    checks.append(
        c.Check(
            "every run valid (no errors, all 200)",
            ", ".join(f"{n}: {ld.errors + ld.non200}" for n, ld in loads.items()),
            "-",
            "-",
            "0 each",
            all(load.valid for load in loads.values()),
        )
    )
    return c.finish("dashboard API", checks, notes)


if __name__ == "__main__":
    sys.exit(main())
