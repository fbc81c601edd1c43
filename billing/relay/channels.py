"""Which channel serves a model, and how healthy each channel is.

The relay keeps a snapshot of the enabled channels and the active catalog in memory, reloaded every
RELAY_CHANNEL_REFRESH_SECONDS (a change in admin reaches every relay process within that time), so
picking a channel costs no query. A sandbox channel serves every active model, and only while no real
channel is enabled.

Health: each failure (timeout, connection error, 429, 5xx) raises the channel's failure count; at
RELAY_CHANNEL_FAILURES in a row the channel is out of rotation for RELAY_CHANNEL_COOLDOWN_SECONDS,
doubling while it keeps failing (up to 64x). Beat probes channels whose time out has passed
(`channels_probe`); a success, probed or live, puts the channel back. A model whose every channel is out
of rotation still tries them, least recently taken out first, rather than refuse outright.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import Channel, ChannelEvent, ModelPrice

KEEP_EVENTS = 50  # per channel


@dataclass(frozen=True)
class Route:
    """One channel able to serve one model (what forwarding needs; the key stays server-side)."""

    channel_id: int
    channel_name: str
    kind: str
    base_url: str
    api_key: str = field(repr=False)
    priority: int
    weight: int
    connect_timeout: float
    read_timeout: float
    upstream_model: str


@dataclass(frozen=True)
class ModelInfo:
    name: str
    billing_type: str
    unit: str
    category: str
    provider: str
    created: int


@dataclass
class Snapshot:
    routes: dict[str, list[Route]]
    models: dict[str, ModelInfo]
    open_until: dict[int, datetime | None]
    failing: set[int]  # channels with failures counted: a success must reset them
    loaded_at: float

    def candidates(self, model: str, *, now: datetime | None = None) -> list[Route]:
        """The routes to try for `model`, in order: in-rotation channels by priority (highest first),
        weighted at random within a priority; then out-of-rotation ones, soonest back first."""
        now = now or timezone.now()
        routes = self.routes.get(model, [])
        healthy = [r for r in routes if (self.open_until.get(r.channel_id) or now) <= now]
        resting = sorted(
            (r for r in routes if r not in healthy), key=lambda r: self.open_until.get(r.channel_id) or now
        )
        # Weighted random order (Efraimidis-Spirakis): key u^(1/w), largest first, within each priority.
        ordered = sorted(healthy, key=lambda r: (-r.priority, -(random.random() ** (1 / r.weight))))
        return ordered + resting

    def mark_failed(self, channel_id: int, until: datetime | None) -> None:
        self.failing.add(channel_id)
        self.open_until[channel_id] = until

    def mark_ok(self, channel_id: int) -> bool:
        """Forget a channel's failures locally; True when the database needs telling too."""
        if channel_id not in self.failing:
            return False
        self.failing.discard(channel_id)
        self.open_until[channel_id] = None
        return True


def snapshot_load() -> Snapshot:
    """Read the enabled channels and the active catalog (two queries and a prefetch)."""
    models = {
        m.name: ModelInfo(m.name, m.billing_type, m.unit, m.category, m.provider, int(m.created_at.timestamp()))
        for m in ModelPrice.objects.filter(is_active=True)
    }
    channels = list(Channel.objects.filter(is_enabled=True).prefetch_related("models__model"))
    real = [c for c in channels if c.kind != Channel.Kind.SANDBOX]
    routes: dict[str, list[Route]] = {}
    for channel in real or channels:
        served = (
            [(name, name) for name in models]
            if channel.kind == Channel.Kind.SANDBOX
            else [(cm.model.name, cm.upstream_name or cm.model.name) for cm in channel.models.all() if cm.model.name in models]
        )
        for name, upstream_name in served:
            routes.setdefault(name, []).append(
                Route(
                    channel_id=channel.pk, channel_name=channel.name, kind=channel.kind, base_url=channel.base_url.rstrip("/"),
                    api_key=channel.api_key, priority=channel.priority, weight=max(channel.weight, 1),
                    connect_timeout=channel.connect_timeout, read_timeout=channel.read_timeout, upstream_model=upstream_name,
                )
            )
    return Snapshot(
        routes=routes, models=models, open_until={c.pk: c.open_until for c in channels},
        failing={c.pk for c in channels if c.consecutive_failures or c.open_until}, loaded_at=time.monotonic(),
    )


# --- health -----------------------------------------------------------------------------------------


def _cooldown(failures: int) -> timedelta:
    over = max(failures - settings.RELAY_CHANNEL_FAILURES, 0)
    return timedelta(seconds=settings.RELAY_CHANNEL_COOLDOWN_SECONDS * (2 ** min(over, 6)))


@transaction.atomic
def channel_failed(*, channel_id: int, error: str) -> datetime | None:
    """Count a failure; at the threshold take the channel out of rotation. Returns until when (or None)."""
    channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
    if channel is None:
        return None
    now = timezone.now()
    channel.consecutive_failures += 1
    channel.last_error = error[:1000]
    channel.last_error_at = now
    events = [ChannelEvent(channel=channel, kind=ChannelEvent.Kind.ERROR, message=error[:1000])]
    if channel.consecutive_failures >= settings.RELAY_CHANNEL_FAILURES:
        was_open = channel.open_until is not None
        channel.open_until = now + _cooldown(channel.consecutive_failures)
        if not was_open:
            events.append(ChannelEvent(
                channel=channel, kind=ChannelEvent.Kind.OPENED,
                message=f"{channel.consecutive_failures} failures in a row; out of rotation until {channel.open_until:%H:%M:%S} UTC",
            ))
    channel.save(update_fields=["consecutive_failures", "last_error", "last_error_at", "open_until", "updated_at"])
    ChannelEvent.objects.bulk_create(events)
    _trim_events(channel_id)
    return channel.open_until


def channel_succeeded(*, channel_id: int, how: str = "A request succeeded") -> None:
    """A success puts a failing channel back in rotation at once (the relay calls this only when its
    snapshot shows failures, so a healthy channel costs no write)."""
    now = timezone.now()
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id).only("id", "open_until", "consecutive_failures").first()
        if channel is None or (channel.consecutive_failures == 0 and channel.open_until is None):
            return
        was_open = channel.open_until is not None
        Channel.objects.filter(pk=channel_id).update(consecutive_failures=0, open_until=None, last_success_at=now, updated_at=now)
        if was_open:
            ChannelEvent.objects.create(channel_id=channel_id, kind=ChannelEvent.Kind.RESTORED, message=how)


def _trim_events(channel_id: int) -> None:
    cutoff = ChannelEvent.objects.filter(channel_id=channel_id).order_by("-id").values_list("id", flat=True)[KEEP_EVENTS:KEEP_EVENTS + 1]
    if cutoff:
        ChannelEvent.objects.filter(channel_id=channel_id, id__lte=cutoff[0]).delete()


def channels_due_for_probe(*, now: datetime | None = None) -> list[Route]:
    """Channels out of rotation whose time out has passed: probe them (one route each)."""
    now = now or timezone.now()
    due = Channel.objects.filter(is_enabled=True, open_until__isnull=False, open_until__lte=now).exclude(kind=Channel.Kind.SANDBOX)
    return [
        Route(channel_id=c.pk, channel_name=c.name, kind=c.kind, base_url=c.base_url.rstrip("/"), api_key=c.api_key,
              priority=c.priority, weight=c.weight, connect_timeout=c.connect_timeout, read_timeout=c.read_timeout,
              upstream_model="")
        for c in due
    ]
