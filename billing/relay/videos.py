"""Task-based requests (video generation): held at submission, polled by Celery until the upstream
says completed (charged for the seconds it made) or failed (released).

The hold is placed for RELAY_TASK_HOLD_SECONDS (a task may run for minutes), so the sweeper leaves it
alone while the task runs. Polls back off from RELAY_TASK_POLL_SECONDS to a minute; a task the upstream
has not finished when its hold runs out is given up: released, nothing charged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Channel, RelayTask
from billing.relay import upstream
from billing.relay.channels import Route
from billing.relay.estimate import duration_units
from billing.relay.gateway import relay_gateway
from billing.services.metering import metering_report
from billing.services.metering.pricing import Usage
from billing.services.tokens import token_authenticate
from synstar.errors import NotFound

logger = logging.getLogger(__name__)

OPEN = (RelayTask.Status.QUEUED, RelayTask.Status.IN_PROGRESS)


def _status(value) -> str:
    return value if value in RelayTask.Status.values else RelayTask.Status.IN_PROGRESS


def _next_poll(polls: int, now: datetime) -> datetime:
    return now + timedelta(seconds=min(settings.RELAY_TASK_POLL_SECONDS * (1.5 ** polls), 60))


def relay_task_open(*, generation_id: int, channel_id: int, upstream_id: str, request: dict, answer: dict) -> RelayTask:
    now = timezone.now()
    return RelayTask.objects.create(
        generation_id=generation_id, channel_id=channel_id, upstream_id=upstream_id[:200], request=request,
        result=answer, status=_status(answer.get("status")) if answer.get("status") in ("queued", "in_progress") else RelayTask.Status.QUEUED,
        progress=int(answer.get("progress") or 0) if str(answer.get("progress") or "0").isdigit() else 0,
        next_poll_at=now + timedelta(seconds=settings.RELAY_TASK_POLL_SECONDS),
    )


def relay_task_for_token(*, raw_key: str, public_id: str) -> RelayTask:
    """The task behind `gen-...`, if it is the token's user's (others get the same 404 as a missing one)."""
    token = token_authenticate(raw_key=raw_key)
    task = RelayTask.objects.select_related("generation", "generation__model").filter(
        generation__public_id=public_id, generation__user_id=token.user_id
    ).first()
    if task is None:
        raise NotFound(_("No such video."), code="video_not_found")
    return task


def _route(channel: Channel) -> Route:
    return Route(channel_id=channel.pk, channel_name=channel.name, kind=channel.kind, base_url=channel.base_url.rstrip("/"),
                 api_key=channel.api_key, priority=channel.priority, weight=channel.weight,
                 connect_timeout=channel.connect_timeout, read_timeout=channel.read_timeout, upstream_model="")


def route_for_task(task: RelayTask) -> Route:
    return _route(Channel.objects.get(pk=task.channel_id))


def video_object(public_id: str, model: str, answer: dict, request: dict) -> dict:
    """What the client sees: the upstream's video object under our id and model name."""
    return {
        **answer,
        "id": public_id,
        "object": "video",
        "model": model,
        "status": answer.get("status") if answer.get("status") in RelayTask.Status.values else "queued",
        "progress": answer.get("progress") or 0,
        "seconds": str(answer.get("seconds") or request.get("seconds") or "4"),
        "size": answer.get("size") or request.get("size") or "720x1280",
        "created_at": answer.get("created_at") or int(timezone.now().timestamp()),
    }


def task_object(task: RelayTask) -> dict:
    data = video_object(task.generation.public_id, task.generation.model.name, task.result or {}, task.request)
    data["status"] = task.status
    data["progress"] = 100 if task.status == RelayTask.Status.COMPLETED else task.progress
    data["error"] = {"code": "task_failed", "message": task.error} if task.status == RelayTask.Status.FAILED else None
    if task.finished_at and task.status == RelayTask.Status.COMPLETED:
        data["completed_at"] = int(task.finished_at.timestamp())
    if task.generation.final_cost is not None:
        data["usage"] = {"cost": float(Decimal(task.generation.final_cost) / 1_000_000_000)}
    return data


@transaction.atomic
def relay_task_apply(*, task_id: int, answer: dict | None, error: str = "", now: datetime | None = None) -> str | None:
    """Record one poll's answer (None: the poll failed). Completed: report the seconds made; failed or out
    of time: report failed (released). Exactly once: the row is locked and only open tasks change."""
    now = now or timezone.now()
    task = (
        RelayTask.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("generation", "generation__model")
        .filter(pk=task_id, status__in=OPEN)
        .first()
    )
    if task is None:
        return None
    generation = task.generation
    task.polls += 1
    status = _status(answer.get("status")) if answer else None
    if answer is not None:
        task.result = answer
        progress = answer.get("progress")
        if isinstance(progress, int) and 0 <= progress <= 100:
            task.progress = progress
    if status == RelayTask.Status.COMPLETED:
        seconds = answer.get("seconds") if answer else None
        try:
            made = float(str(seconds)) if seconds is not None else float(task.request.get("seconds") or 4)
        except ValueError:
            made = float(generation.est_units)
        unit = generation.price_snapshot.get("unit") or ""
        units = Decimal(str(made)) if unit == "second" else duration_units(made, unit=unit) if unit == "minute" else Decimal(1)
        metering_report(gateway=relay_gateway(), public_id=generation.public_id, outcome="succeeded",
                        usage=Usage(input_tokens=generation.est_input_tokens, units=units))
        task.status, task.finished_at = RelayTask.Status.COMPLETED, now
    elif status == RelayTask.Status.FAILED or now >= generation.deadline:
        message = ((answer or {}).get("error") or {}).get("message") if isinstance((answer or {}).get("error"), dict) else None
        task.error = message or error or "The task did not finish before its hold ran out."
        metering_report(gateway=relay_gateway(), public_id=generation.public_id, outcome="failed", error=task.error)
        task.status, task.finished_at = RelayTask.Status.FAILED, now
    else:
        if status is not None:
            task.status = status
        if answer is None:
            task.error = error[:1000]
        task.next_poll_at = _next_poll(task.polls, now)
    task.save()
    return task.status


def relay_tasks_poll(*, limit: int = 100, now: datetime | None = None) -> int:
    """Beat: ask the upstream about every task due for a poll (concurrently), then record each answer."""
    now = now or timezone.now()
    due = list(
        RelayTask.objects.select_related("channel").filter(status__in=OPEN, next_poll_at__lte=now).order_by("next_poll_at")[:limit]
    )
    if not due:
        return 0
    answers = upstream.run_sync(_fetch([(task.pk, _route(task.channel), task.upstream_id) for task in due]))
    for task_id, answer, error in answers:
        relay_task_apply(task_id=task_id, answer=answer, error=error)
    return len(due)


async def _fetch(targets: list[tuple[int, Route, str]]) -> list[tuple[int, dict | None, str]]:
    async with upstream.standalone_client() as clients:

        async def one(task_id: int, route: Route, upstream_id: str) -> tuple[int, dict | None, str]:
            try:
                response = await upstream.send(route, "GET", f"/videos/{upstream_id}", clients=clients)
            except upstream.UpstreamError as exc:
                return task_id, None, exc.message
            try:
                data = (await response.aread()) and response.json()
            except ValueError:
                data = None
            finally:
                await response.aclose()
            if response.status_code >= 400 or not isinstance(data, dict):
                return task_id, None, f"poll answered HTTP {response.status_code}"
            return task_id, data, ""

        return list(await asyncio.gather(*(one(*t) for t in targets)))
