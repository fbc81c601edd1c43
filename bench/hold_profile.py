#!/usr/bin/env python
"""Where the Python time of one `POST /api/v1/metering/holds` goes, in one process, from one run.

    .venv/bin/python bench/hold_profile.py                 # 2000 requests per phase
    .venv/bin/python bench/hold_profile.py -n 500 --profile   # and cProfile top-30 of the HTTP phase

Uses DATABASE_URL / CACHE_URL / CELERY_BROKER_URL from the environment (a database of your own: it is
migrated and seeded with a few users, tokens and a gateway key on each run; nothing is dropped). Runs
these phases on the same connection, N requests each, in turns (`--rounds`, the best round of each phase
counts, so other load on the machine weighs on every phase alike), and prints the CPU time
(`time.process_time`) and wall time per request, and their ratios:

- `healthz`: GET /healthz through Django's WSGIHandler (every middleware): the framework floor;
- `http`: the hold endpoint through the same WSGIHandler, with the body the benchmark (bench/run.py
  `run_http`) sends: a token, gpt-4o-mini, 500 input and 500 maximum output tokens;
- `http-stub`: the same request with `metering_hold` replaced by one that returns a generation held
  before: the framework, DRF and the serializers alone (without the per-request connection health check,
  which the service's first statement pays);
- `service`: `metering_hold` called directly with the same arguments;
- `sql`: the statements one hold sends (captured with bench/sqlcapture.py), replayed on the raw psycopg
  connection (a fresh `gen-` id each time): the database's share, without any Python of ours.

It also prints the queries one hold request makes (Django's CaptureQueriesContext). The figures are for
one process without concurrency: CPU per request is what bounds requests per second on a busy machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# bench.run points the environment at its own database unless told otherwise: tell it ours.
for ours, theirs in (("DATABASE_URL", "BENCH_DATABASE_URL"), ("CELERY_BROKER_URL", "BENCH_BROKER_URL"),
                     ("CACHE_URL", "BENCH_CACHE_URL")):
    if ours in os.environ:
        os.environ.setdefault(theirs, os.environ[ours])
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")

from bench.run import bench_fixtures, django_setup, seed_accounts  # noqa: E402

MODEL = "gpt-4o-mini"


def _environ(method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None) -> dict:
    """A WSGI environ as gunicorn builds it."""
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _fresh_public_id(params):
    """The captured parameters with a new `gen-` id (the column is unique)."""
    def swap(value):
        return f"gen-{secrets.token_urlsafe(18)}" if isinstance(value, str) and value.startswith("gen-") else value

    if isinstance(params, dict):
        return {key: swap(value) for key, value in params.items()}
    return None if params is None else [swap(value) for value in params]


def _timed(n: int, call) -> tuple[float, float]:
    """CPU and wall seconds per call of `call(i)`, over n calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        call(i)
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="requests per phase (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="the phases take turns this many times; the best round counts")
    parser.add_argument("--users", type=int, default=200, help="seeded users, one token each (default 200)")
    parser.add_argument("--profile", action="store_true", help="cProfile the HTTP phase: top 30 by cumulative and by tottime")
    args = parser.parse_args()

    django_setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection

    from bench.sqlcapture import capture
    from billing.models import GatewayKey
    from billing.services.metering import metering_hold
    from billing.services.tokens import gateway_key_create
    from synstar.errors import Conflict

    call_command("migrate", verbosity=0)
    run = secrets.token_hex(4)
    try:
        fx = bench_fixtures()  # the catalog, the top-up config and a gateway key named "bench"
    except Conflict:  # a run before made them: a gateway key of our own
        gateway, raw = gateway_key_create(name=f"hold-profile-{run}")
        fx = {"gateway_id": gateway.pk, "gateway_key": raw}
    seeded = seed_accounts(f"hold-profile-{run}-", args.users)
    keys = seeded["keys"]
    gateway = GatewayKey.objects.get(pk=fx["gateway_id"])
    app = WSGIHandler()
    auth = {"Authorization": f"Bearer {fx['gateway_key']}"}

    def start_response(status, headers, exc_info=None):
        start_response.status = status

    def hold_request(i: int) -> None:
        body = json.dumps({"token": keys[i % len(keys)], "model": MODEL, "input_tokens": 500, "max_output_tokens": 500}).encode()
        answer = b"".join(app(_environ("POST", "/api/v1/metering/holds", body=body, headers=auth), start_response))
        if not start_response.status.startswith("201"):
            raise SystemExit(f"hold answered {start_response.status}: {answer!r}")

    import billing.apis.metering as hold_api

    answer_as_held = metering_hold(gateway=gateway, token_key=keys[0], model_name=MODEL, endpoint="/v1/chat/completions",
                                   input_tokens=500, max_output_tokens=500)

    def hold_request_without_service(i: int) -> None:
        hold_api.metering_hold = lambda **_: answer_as_held
        try:
            hold_request(i)
        finally:
            hold_api.metering_hold = metering_hold

    def healthz(i: int) -> None:
        for _chunk in app(_environ("GET", "/healthz"), start_response):
            pass

    def service_hold(i: int) -> None:
        metering_hold(gateway=gateway, token_key=keys[i % len(keys)], model_name=MODEL, endpoint="/v1/chat/completions",
                      input_tokens=500, max_output_tokens=500)

    for i in range(50):  # warm up: imports, caches, the connection
        hold_request(i)
        healthz(i)
        service_hold(i)

    with capture() as queries:  # (CaptureQueriesContext would be emptied by request_started)
        hold_request(0)
    with capture() as statements:
        service_hold(0)
    raw = connection.connection  # the psycopg connection under Django's

    def sql_hold(i: int) -> None:
        with raw.cursor() as cursor:
            cursor.execute("BEGIN")
            for text, params, _many in statements:
                cursor.execute(text, _fresh_public_id(params))
            cursor.execute("COMMIT")

    n = args.n
    calls = {"healthz": healthz, "http": hold_request, "http-stub": hold_request_without_service, "service": service_hold,
             "sql": sql_hold}
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _round in range(args.rounds):  # interleaved, and the best round of each: other load on the machine
        for name, call in calls.items():  # costs every phase alike
            rounds[name].append(_timed(n // args.rounds, call))
    phases = {name: min(timings) for name, timings in rounds.items()}

    print(f"\n{n} requests per phase ({args.rounds} rounds), {args.users} tokens; queries per hold request: {len(queries)}")
    for text, _params, _many in queries:
        print("    " + " ".join(text.split())[:150])
    print(f"\n{'phase':<10}{'CPU us/req':>12}{'wall us/req':>13}{'CPU / sql':>11}{'CPU / http':>12}")
    for name, (cpu, wall) in phases.items():
        print(f"{name:<10}{cpu * 1e6:>12.0f}{wall * 1e6:>13.0f}{cpu / phases['sql'][0]:>11.2f}{cpu / phases['http'][0]:>12.2f}")
    http, stub, service, sql = (phases[name][0] for name in ("http", "http-stub", "service", "sql"))
    print(f"\nsplit of the hold request's CPU: framework+DRF {(http - service) / http:.0%} "
          f"(measured alone, http-stub: {stub / http:.0%}), service Python {(service - sql) / http:.0%}, "
          f"SQL (client side) {sql / http:.0%}")

    if args.profile:
        profiler = cProfile.Profile(time.process_time)  # CPU, not time spent waiting on the database
        profiler.enable()
        for i in range(n):
            hold_request(i)
        profiler.disable()
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(30)
            print(f"\n--- top 30 by {order} ({n} hold requests) ---")
            print("\n".join(out.getvalue().splitlines()[4:]))


if __name__ == "__main__":
    main()
