"""Database helpers for services that move money.

READ COMMITTED, conditional updates and check constraints do the work; what remains is to retry a
transaction that lost a deadlock, a serialization race or its short lock_timeout, a bounded number of
times, and only at the outermost transaction (a retry inside an outer block would replay half of it).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction

from synstar.errors import ServiceBusy

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# deadlock_detected, serialization_failure, lock_not_available (lock_timeout)
RETRYABLE_SQLSTATES = {"40P01", "40001", "55P03"}


def _is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite under the quickstart: "database is locked" after its busy timeout.
    return connection.vendor == "sqlite" and "locked" in str(exc)


def atomic_with_retry(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` in a transaction; retry it on deadlock/serialization/lock-timeout when outermost."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            with transaction.atomic():
                return func(*args, **kwargs)
        attempts = settings.LEDGER_MAX_RETRIES
        for attempt in range(1, attempts + 1):
            try:
                with transaction.atomic():
                    return func(*args, **kwargs)
            except OperationalError as exc:
                if not _is_retryable(exc) or attempt == attempts:
                    if _is_retryable(exc):
                        logger.warning("%s gave up after %d attempts: %s", func.__qualname__, attempt, exc)
                        raise ServiceBusy() from exc
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def retry_statement(func: Callable[P, R]) -> Callable[P, R]:
    """Retry a function made of one atomic statement (autocommit: no BEGIN/COMMIT round trips) on
    deadlock/serialization/lock timeout. Inside an outer transaction it simply runs once."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            return func(*args, **kwargs)
        attempts = settings.LEDGER_MAX_RETRIES
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if not _is_retryable(exc):
                    raise
                if attempt == attempts:
                    raise ServiceBusy() from exc
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper
