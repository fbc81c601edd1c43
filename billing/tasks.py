import logging

from celery import shared_task
from django.db import OperationalError

from billing.relay.probe import channels_probe
from billing.relay.videos import relay_tasks_poll
from billing.services.metering import generation_settle, generations_settle_batch, metering_sweep
from synstar.errors import ServiceBusy

logger = logging.getLogger(__name__)


# Settlement tasks: retried with backoff on a busy database; acknowledged only once done, so a worker
# killed mid-task leaves the message for another.
SETTLE_TASK_OPTIONS = {
    "autoretry_for": (ServiceBusy, OperationalError),
    "retry_backoff": 0.5,
    "retry_backoff_max": 30,
    "max_retries": 8,
    "acks_late": True,
}


@shared_task(**SETTLE_TASK_OPTIONS)
def generation_settle_task(generation_id: int) -> None:
    """Settle one reported generation. Harmless when run twice: the service settles exactly once."""
    generation_settle(generation_id=generation_id, fetch=False)


@shared_task(**SETTLE_TASK_OPTIONS)
def generations_settle_task() -> int:
    """Settle every reported generation, in batches of one transaction each. Harmless when run twice or
    concurrently: rows are taken with FOR UPDATE SKIP LOCKED and each settles exactly once."""
    return generations_settle_batch()


@shared_task
def metering_sweep_task() -> dict:
    return metering_sweep()


@shared_task
def relay_tasks_poll_task() -> int:
    """Poll the upstream about running video tasks; settle the finished ones."""
    return relay_tasks_poll()


@shared_task
def channels_probe_task() -> dict:
    """Probe channels out of rotation whose time out has passed."""
    return channels_probe()
