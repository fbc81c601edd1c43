import os
import threading
from collections.abc import Callable

import pytest
from django.conf import settings

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls from the same thread
# are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_configure(config):
    config.addinivalue_line("markers", "ledger_broken: the test breaks the ledger on purpose; skip the check")
    config.addinivalue_line("markers", "leases: hot accounts take leases (METERING_LEASES on) in this test")
    # Tests create thousands of users; PBKDF2 would dominate the run. Passwords are not under test here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The translation catalogs, compiled as `make test` does (a direct pytest run gets them too).
    from synstar.management.commands.compile_catalogs import compile_stale

    compile_stale()


@pytest.fixture(scope="session", autouse=True)
def _real_postgresql():
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        pytest.exit(
            f"The suite runs on real PostgreSQL (got {engine}). Use `make test`, or set "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/synstar.",
            returncode=2,
        )


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate limits (allauth's, ours) live in the cache; each test starts with none used."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_system_account_cache():
    """System accounts are never deleted in production; tests roll them back, so forget their ids."""
    from wallet.services import ledger as services

    services._system_account_ids.clear()
    yield
    services._system_account_ids.clear()


@pytest.fixture(autouse=True)
def _leases_only_where_asked(request):
    """Leases change `held` by whole slices once an account is hot: tests that assert exact balances of
    quick holds run without them; tests marked `leases` (and the state machine, explicitly) cover them.
    Each test starts with this process's lease cache empty (its leases were rolled back)."""
    from billing.services.metering import leases

    before = settings.METERING_LEASES
    settings.METERING_LEASES = request.node.get_closest_marker("leases") is not None
    leases.forget()
    yield
    settings.METERING_LEASES = before
    leases.forget()


@pytest.fixture(autouse=True)
def _check_ledger_after_each_test(request):
    """check_ledger after every scenario that touched the database."""
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    yield
    if not uses_db or request.node.get_closest_marker("ledger_broken"):
        return
    from wallet.selectors.ledger import ledger_problems

    problems = ledger_problems()
    assert problems == [], "check_ledger failed after the test:\n" + "\n".join(problems)


@pytest.fixture
def make_user(db) -> Callable:
    from tests.factories import make_user as factory

    return factory


@pytest.fixture
def admin_user(db):
    from tests.factories import make_user

    return make_user(email="root@example.com", is_staff=True)


MAX_THREADS = 48  # PostgreSQL's default max_connections is 100; leave room for everything else


def run_concurrently(fn: Callable, args_list: list, *, timeout: float = 120) -> tuple[list, list]:
    """Run fn(*args) for every args, from up to MAX_THREADS threads released at once by one barrier
    (each thread, with its own connection, takes the next call as soon as it is done); (results, errors)."""
    from django.db import connection

    n_threads = min(len(args_list), MAX_THREADS)
    barrier = threading.Barrier(n_threads)
    results, errors = [], []
    lock = threading.Lock()
    todo = list(args_list)

    def work():
        try:
            barrier.wait()
            while True:
                with lock:
                    if not todo:
                        return
                    args = todo.pop()
                try:
                    value = fn(*args)
                    with lock:
                        results.append(value)
                except Exception as exc:  # noqa: BLE001 - the test inspects what failed
                    with lock:
                        errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    return results, errors


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A real Celery worker on the configured broker (Redis under `make test`), reading the test DB."""
    from synstar.celery import app
    from tests.celery_worker import WorkerProcess

    app.control.purge()
    worker = WorkerProcess(tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()
