"""Production behaviour: settings that refuse to start half-configured, a clean deployment check, the
documented environment, the health endpoint, request logs, and the console's CSS under gunicorn."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "a-test-secret-key-for-the-production-checks-0123456789"


def _run(code: str, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120)


SETUP = "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'synstar.settings'); django.setup(); print('started')"


def test_debug_false_refuses_the_quickstart_key_and_missing_hosts():
    no_key = _run(SETUP, DEBUG="false", ALLOWED_HOSTS="example.com")
    assert no_key.returncode != 0 and "needs SECRET_KEY" in no_key.stderr
    no_hosts = _run(SETUP, DEBUG="false", SECRET_KEY=SECRET)
    assert no_hosts.returncode != 0 and "needs ALLOWED_HOSTS" in no_hosts.stderr
    ok = _run(SETUP, DEBUG="false", SECRET_KEY=SECRET, ALLOWED_HOSTS="example.com")
    assert ok.returncode == 0 and "started" in ok.stdout
    quickstart = _run(SETUP, DEBUG="true")
    assert quickstart.returncode == 0


def _env_example() -> dict:
    pairs = [line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_deploy_check_is_clean_with_the_documented_production_settings():
    env = {**_env_example(), "SECRET_KEY": SECRET, "DJANGO_ALLOW_ASYNC_UNSAFE": "", "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
           "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", ""), "CACHE_URL": os.environ.get("CACHE_URL", "")}
    base = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}  # set by the test runner only
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env={**base, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_every_setting_read_from_the_environment_is_documented():
    source = (ROOT / "synstar" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\("([A-Z_]+)"', source)) | set(re.findall(r'"([A-Z_]+)" not in env\.ENVIRON', source))
    readme = (ROOT / "README.md").read_text()
    example = _env_example()
    assert read, "found no settings"
    assert sorted(v for v in read if f"`{v}`" not in readme) == []
    assert sorted(v for v in read if v not in example) == []


@pytest.mark.django_db
def test_health_checks_the_database_cache_and_broker(client, monkeypatch):
    response = client.get("/health/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"Database": "OK", "Cache": "OK", "Broker": "OK"}
    from synstar.celery import app

    connect = app.connection_for_write
    monkeypatch.setattr(app, "connection_for_write", lambda: connect(url="redis://127.0.0.1:1/0"))  # nothing listens there
    broken = client.get("/health/", HTTP_ACCEPT="application/json")
    assert broken.status_code == 500
    assert broken.json() == {"Database": "OK", "Cache": "OK", "Broker": "unavailable"}
    assert "6379" not in broken.content.decode() and "redis" not in broken.content.decode()  # details go to the log
    assert client.get("/healthz").status_code == 200  # liveness touches nothing


@pytest.mark.django_db
def test_one_json_log_line_per_request_with_its_id(client, caplog):
    from pythonjsonlogger.json import JsonFormatter

    from synstar.logging import ContextFilter

    with caplog.at_level(logging.INFO, logger="synstar.request"):
        response = client.get("/api/v1/pricing?secret=sk-should-not-appear", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    records = [r for r in caplog.records if r.name == "synstar.request"]
    assert len(records) == 1
    ContextFilter().filter(records[0])
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s")
    line = json.loads(formatter.format(records[0]))
    assert line["path"] == "/api/v1/pricing" and line["status"] == 200 and "sk-should-not-appear" not in json.dumps(line)
    generated = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-ID"])
