"""The console has its CSS under the production server (uvicorn, the ASGI app) with DEBUG=false:
collectstatic's hashed files, served by whitenoise."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "a-test-secret-key-for-the-production-checks-0123456789"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_console_has_its_css_under_uvicorn_with_debug_false(browser, tmp_path):
    db = settings.DATABASES["default"]
    env = {**os.environ, "DEBUG": "false", "WHITENOISE_USE_FINDERS": "false", "SECRET_KEY": SECRET, "ALLOWED_HOSTS": "127.0.0.1", "STATIC_ROOT": str(tmp_path / "static"),
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "synstar.asgi:application", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/accounts/login/")
        css = [link for link in page.eval_on_selector_all("link[rel=stylesheet]", "els => els.map(e => e.href)")]
        assert css and all(re.search(r"\.[0-9a-f]{12}\.css$", href) for href in css if "/static/" in href), css  # hashed names
        response = page.request.get(css[0])
        assert response.status == 200 and "text/css" in response.headers["content-type"]
        # The stylesheet applies: the sign-in card is a white panel on the page's tinted background.
        assert page.eval_on_selector(".entrance .card", "e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
        page.close()
    finally:
        server.terminate()
        server.wait(10)
