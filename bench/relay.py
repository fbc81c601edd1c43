#!/usr/bin/env python
"""The relay's benchmark: the same fake upstream called (a) directly, (b) through our relay, (c) through
LiteLLM's proxy, each server with one process, by `wrk` at 16, 64 and 256 connections, non-streaming and
streaming, with the upstream answering at once and after 200 ms. Then 1,000 streams open at once
through the relay (memory per open stream). The run counts only if every relay generation settled and
check_ledger is clean.

    make bench-relay                       # about 10 minutes
    make bench-relay BENCH_ARGS=--quick    # 3 s per point

LiteLLM runs from its own virtualenv (LITELLM_BIN, default .venv-litellm/bin/litellm, made by
`make bench-relay` from bench/litellm.lock), with LITELLM_LOCAL_MODEL_COST_MAP=True (no network).
Writes bench/results/relay.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/synstar_bench_relay")
os.environ.setdefault("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("BENCH_CACHE_URL", "redis://127.0.0.1:6379/10")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import PY, ROOT, django_setup, ensure_wrk, log, recreate_database, seed_accounts  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LITELLM_BIN = os.environ.get("LITELLM_BIN", str(ROOT / ".venv-litellm" / "bin" / "litellm"))
PORTS = {"fast": 8201, "slow": 8202, "streams": 8203, "relay": 8210, "litellm": 8220}
MODELS = {"fast": "gpt-4o-mini", "slow": "gpt-4o", "streams": "bench-streams"}  # 0 ms, 200 ms, long streams
LITELLM_KEY = "sk-litellm-bench-master-key-0123456789abcdef0123456789abcdef"  # its master key (no database: the only key)
BODY = {"messages": [{"role": "user", "content": "Write one short sentence."}], "max_tokens": 64}


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_port(port: int, proc: subprocess.Popen, name: str, timeout: float = 90) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if not free(port):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited; see bench/results/relay-{name}.log")
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not listen on {port}")


def start(name: str, cmd: list[str], env: dict | None = None, *, without: tuple[str, ...] = ()) -> subprocess.Popen:
    log_file = open(RESULTS / f"relay-{name}.log", "w")
    full = {k: v for k, v in os.environ.items() if k not in without}
    return subprocess.Popen(cmd, cwd=ROOT, env={**full, **(env or {})}, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# --- setup ----------------------------------------------------------------------------------------


def setup() -> dict:
    recreate_database()
    django_setup()
    from billing.demo import catalog_load
    from billing.models import Channel, ChannelModel, ModelPrice

    catalog_load()
    base = ModelPrice.objects.get(name="gpt-4o-mini")
    base.pk, base.name, base.display_name = None, MODELS["streams"], "bench streams"
    base.save()
    for kind, model in MODELS.items():
        channel = Channel.objects.create(name=f"fake-{kind}", base_url=f"http://127.0.0.1:{PORTS[kind]}/v1", api_key="fake-key",
                                         read_timeout=60)
        ChannelModel.objects.create(channel=channel, model=ModelPrice.objects.get(name=model))
    spread = seed_accounts("spread", 100, balance_usd="1000000")
    hot = seed_accounts("hot", 1, balance_usd="1000000")
    return {"spread_keys": spread["keys"], "hot_keys": hot["keys"]}


def litellm_config() -> Path:
    path = Path(tempfile.mkdtemp()) / "litellm.yaml"
    lines = ["model_list:"]
    for kind, model in MODELS.items():
        lines += [f"  - model_name: {model}", "    litellm_params:", f"      model: openai/{model}",
                  f"      api_base: http://127.0.0.1:{PORTS[kind]}/v1", "      api_key: fake-key"]
    lines += ["litellm_settings:", "  drop_params: true", "  telemetry: false"]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- load -----------------------------------------------------------------------------------------


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, *, model: str, stream: bool, keys: list[str], connections: int, seconds: int) -> dict:
    body = json.dumps({**BODY, "model": model, "stream": stream})
    script = Path(tempfile.mkdtemp()) / "chat.lua"
    script.write_text(
        "local keys = {" + ",".join(f'"{k}"' for k in keys[:500]) + "}\n"
        f"local body = [[{body}]]\n"
        "request = function()\n"
        "  local k = keys[math.random(#keys)]\n"
        "  return wrk.format('POST', nil, {['Authorization']='Bearer ' .. k, ['Content-Type']='application/json'}, body)\n"
        "end\n"
    )
    out = subprocess.run([ensure_wrk(), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "30s",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))

    def parse(v: str) -> float:
        m = re.match(r"([\d.]+)(\w+)", v)
        return round(_ms(m.group(1), m.group(2)), 2)

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": parse(latency["50"]),
            "p99_ms": parse(latency["99"]), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


async def open_streams(url: str, keys: list[str], n: int, pid: int) -> dict:
    """n streams open at once; the server's memory (RSS of its process tree) while they are all open."""
    import httpx
    import psutil

    def rss() -> int:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])

    idle = rss()
    completed = 0
    opened = asyncio.Event()
    started = 0
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n + 10)) as client:

        async def one(i: int) -> None:
            nonlocal completed, started
            body = {**BODY, "model": MODELS["streams"], "stream": True}
            async with client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {keys[i % len(keys)]}"}) as response:
                started += 1
                if started == n:
                    opened.set()
                async for line in response.aiter_lines():
                    if line.strip() == "data: [DONE]":
                        completed += 1

        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        await asyncio.wait_for(opened.wait(), 120)
        await asyncio.sleep(1)
        peak = rss()
        await asyncio.gather(*tasks)
    return {"streams": n, "completed": completed, "idle_rss_mb": round(idle / 2**20, 1), "open_rss_mb": round(peak / 2**20, 1),
            "kb_per_open_stream": round((peak - idle) / n / 1024, 1)}


def settle_and_check(timeout: float = 300) -> dict:
    from billing.models import Generation
    from wallet.selectors.ledger import ledger_problems

    until = time.monotonic() + timeout
    while time.monotonic() < until:
        open_ = Generation.objects.filter(state__in=["held", "reported"]).count()
        if not open_:
            break
        time.sleep(1)
    counts = dict(Generation.objects.values_list("state").annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("id")))
    problems = ledger_problems()
    return {"generations": counts, "all_settled": set(counts) <= {"settled"}, "check_ledger": "clean" if not problems else problems[:5]}


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--latencies", default="0,200", help="upstream latencies to run (ms): 0, 200")
    parser.add_argument("--connections", default="16,64,256")
    parser.add_argument("--modes", default="plain,stream")
    parser.add_argument("--no-streams", action="store_true", help="skip the 1,000 open streams")
    args = parser.parse_args()
    seconds = 3 if args.quick else 8
    RESULTS.mkdir(exist_ok=True)
    for port in PORTS.values():
        if not free(port):
            raise SystemExit(f"port {port} is busy")
    fx = setup()
    log("database ready")
    procs: dict[str, subprocess.Popen] = {}
    fake_env = {"fast": {"FAKE_WORDS": "20"}, "slow": {"FAKE_WORDS": "20", "FAKE_DELAY_MS": "200"},
                "streams": {"FAKE_WORDS": "40", "FAKE_CHUNK_DELAY_MS": "250"}}
    try:
        for kind, env in fake_env.items():
            procs[kind] = start(f"upstream-{kind}", [PY, "-m", "uvicorn", "--factory", "tests.fakes.upstream:app_from_env", "--port",
                                                     str(PORTS[kind]), "--no-access-log", "--log-level", "warning",
                                                     "--timeout-keep-alive", "75"], env)
        procs["relay"] = start("relay", [PY, "-m", "uvicorn", "synstar.asgi:application", "--port", str(PORTS["relay"]), "--workers", "1",
                                         "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "75"])
        procs["worker"] = start("worker", [PY, "-m", "celery", "-A", "synstar", "worker", "--concurrency", "1", "--loglevel", "WARNING",
                                           "--without-gossip", "--without-mingle", "--without-heartbeat"])
        use_litellm = not args.skip_litellm and Path(LITELLM_BIN).exists()
        if use_litellm:
            procs["litellm"] = start("litellm", [LITELLM_BIN, "--config", str(litellm_config()), "--port", str(PORTS["litellm"]),
                                                 "--num_workers", "1"], {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                                                 "LITELLM_MASTER_KEY": LITELLM_KEY},
                                    # its default: no database (our DATABASE_URL would make it want one)
                                    without=("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"))
        for name, proc in procs.items():
            if name in PORTS:
                wait_port(PORTS[name], proc, name)
        log("servers up" + ("" if use_litellm else " (LiteLLM not installed: skipped)"))

        targets = {"direct": None, "relay": f"http://127.0.0.1:{PORTS['relay']}/v1/chat/completions"}
        if use_litellm:
            targets["litellm"] = f"http://127.0.0.1:{PORTS['litellm']}/v1/chat/completions"
        points = []
        latencies = [int(x) for x in args.latencies.split(",")]
        for latency, kind in ((lat, kind) for lat, kind in ((0, "fast"), (200, "slow")) if lat in latencies):
            for stream in (m == "stream" for m in args.modes.split(",")):
                for connections in (int(c) for c in args.connections.split(",")):
                    row = {"upstream_ms": latency, "stream": stream, "connections": connections}
                    for target, url in targets.items():
                        url = url or f"http://127.0.0.1:{PORTS[kind]}/v1/chat/completions"
                        keys = [LITELLM_KEY] if target == "litellm" else fx["spread_keys"]
                        row[target] = wrk(url, model=MODELS[kind], stream=stream, keys=keys, connections=connections, seconds=seconds)
                    for target in targets:
                        if target != "direct":
                            row[target]["added_p50_ms"] = round(row[target]["p50_ms"] - row["direct"]["p50_ms"], 2)
                            row[target]["added_p99_ms"] = round(row[target]["p99_ms"] - row["direct"]["p99_ms"], 2)
                    points.append(row)
                    log(" ".join(f"{t}={row[t]['rps']:.0f}rps/p50 {row[t]['p50_ms']}ms/p99 {row[t]['p99_ms']}ms" for t in targets)
                        + f"  [{latency}ms stream={stream} c={connections}]")
        # Hot and spread take turns, each starting with the settlement queue drained (a backlog left by one
        # would slow the other down), and each keeps its best of two rounds.
        hot = spread = {"rps": 0.0}
        for _ in range(2):
            settle_and_check()
            hot = max(hot, wrk(targets["relay"], model=MODELS["fast"], stream=False, keys=fx["hot_keys"], connections=64,
                               seconds=seconds), key=lambda r: r["rps"])
            settle_and_check()
            spread = max(spread, wrk(targets["relay"], model=MODELS["fast"], stream=False, keys=fx["spread_keys"],
                                     connections=64, seconds=seconds), key=lambda r: r["rps"])
        log(f"relay hot account: {hot['rps']:.0f} rps vs spread {spread['rps']:.0f} ({hot['rps'] / spread['rps']:.2f})")
        streams = {}
        if not args.no_streams:
            streams["relay"] = asyncio.run(open_streams(targets["relay"], fx["spread_keys"], 1000, procs["relay"].pid))
            log(f"1000 open streams through the relay: {streams['relay']}")
        if use_litellm and not args.no_streams:
            streams["litellm"] = asyncio.run(open_streams(targets["litellm"], [LITELLM_KEY], 1000, procs["litellm"].pid))
            log(f"1000 open streams through LiteLLM: {streams['litellm']}")
        ledger = settle_and_check()
        log(f"settlement: {ledger}")
    finally:
        for proc in procs.values():
            stop(proc)
    result = {"when": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "seconds_per_point": seconds, "points": points,
              "relay_hot_account": {"hot_rps": hot["rps"], "spread_rps": spread["rps"], "ratio": round(hot["rps"] / spread["rps"], 2)},
              "open_streams": streams, "ledger": ledger, "valid": ledger["all_settled"] and ledger["check_ledger"] == "clean"}
    (RESULTS / "relay.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "points"}, indent=2))
    if not result["valid"]:
        raise SystemExit("INVALID RUN: not every generation settled, or check_ledger found problems")


if __name__ == "__main__":
    main()
