"""`make run`: the web server (uvicorn: console, admin, API and the relay on one ASGI app), a Celery worker
and beat in one terminal; Ctrl-C stops all three."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from synstar.management.commands.load_demo import DEMO_USERS


class Command(BaseCommand):
    help = "Start the web app, a Celery worker and Celery beat together."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("ADDR", "127.0.0.1:8000"))

    def prepare(self, *, addr: str) -> dict[str, list[str]]:
        """The three commands, with what they need on disk: beat writes its schedule file into a folder
        that a fresh checkout does not have (with a Redis broker nothing else creates `.celery/`)."""
        Path(settings.CELERY_BEAT_SCHEDULE_FILENAME).parent.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "synstar"]
        host, _, port = addr.rpartition(":")
        return {
            "web": [python, "-m", "uvicorn", "synstar.asgi:application", "--host", host or "127.0.0.1", "--port", port or "8000",
                    "--no-access-log", "--timeout-graceful-shutdown", "5", "--timeout-keep-alive", "75"],
            "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", str(os.cpu_count() or 2)],
            "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME],
        }

    def handle(self, *args, addr, **options):
        commands = self.prepare(addr=addr)
        processes = {name: subprocess.Popen(cmd, cwd=settings.BASE_DIR) for name, cmd in commands.items()}
        db = settings.DATABASES["default"]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "SynStar console is starting.",
                    f"  Console:   http://{addr}/",
                    f"  Admin:     http://{addr}/admin/",
                    f"  API docs:  http://{addr}/api/docs/",
                    f"  Relay:     http://{addr}/v1/chat/completions (OpenAI-compatible; Bearer sk-...)",
                    f"  Database:  {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('NAME')}",
                    f"  Broker:    {settings.CELERY_BROKER_URL.split('@')[-1]}",
                    *[f"  Login:     {email} / {password}{' (admin)' if staff else ''}" for email, password, _, staff in DEMO_USERS],
                    "  Press Ctrl-C to stop.",
                    "",
                ]
            )
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, proc in processes.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping the others.")
                        stopping = True
                time.sleep(0.5)
        finally:
            for proc in processes.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in processes.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
