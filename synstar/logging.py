"""Log lines that say which request or task they belong to: one line per request (method, path, status,
duration, user, request id) and per Celery task (name, id, state, duration). The ids ride on every record
logged meanwhile, through a context variable and a logging filter. Query strings and bodies are never
logged: they can carry keys."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from celery import signals

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
task_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

request_log = logging.getLogger("synstar.request")
task_log = logging.getLogger("synstar.task")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.task_id = task_id_var.get()
        return True


class RequestLogMiddleware:
    """Takes the caller's X-Request-ID when it is a plain token (else makes one), answers it back, and logs
    one line when the response is ready."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            user = getattr(request, "user", None)
            request_log.info(
                "%s %s %s %.1fms", request.method, request.path, response.status_code, (time.perf_counter() - started) * 1000,
                extra={"method": request.method, "path": request.path, "status": response.status_code,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                       "user_id": user.pk if user is not None and user.is_authenticated else None},
            )
            return response
        finally:
            request_id_var.reset(token)


_task_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_prerun(task_id=None, task=None, **_):
    task_id_var.set(task_id or "-")
    _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_postrun(task_id=None, task=None, state=None, **_):
    started = _task_started.pop(task_id, None)
    duration = round((time.perf_counter() - started) * 1000, 1) if started else None
    task_log.info("%s %s %s", getattr(task, "name", "?"), state, f"{duration}ms" if duration is not None else "",
                  extra={"task": getattr(task, "name", "?"), "state": state, "duration_ms": duration})
    task_id_var.set("-")
