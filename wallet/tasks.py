import logging

from celery import shared_task

from wallet.models import WebhookDelivery
from wallet.selectors.ledger import ledger_problems
from wallet.services.alerts import retry_delay, webhook_deliver, webhook_deliveries_requeue
from wallet.services.autotopup import autotopup_charge, autotopups_resume, card_fetch
from wallet.services.refunds import refunds_resume
from wallet.services.topups import orders_reconcile
from wallet.services.webhooks import webhook_events_retry, webhook_process

logger = logging.getLogger(__name__)


@shared_task
def ledger_check() -> int:
    """Periodic audit (beat): logs every broken ledger invariant at ERROR so operators are alerted."""
    problems = ledger_problems()
    for problem in problems:
        logger.error("ledger invariant broken: %s", problem)
    if not problems:
        logger.info("ledger check: OK")
    return len(problems)


@shared_task(bind=True, max_retries=5, acks_late=True)
def webhook_process_task(self, event_pk: int) -> None:
    """Process one stored webhook event; a failure is saved on the event and retried with backoff."""
    try:
        webhook_process(event_pk=event_pk)
    except Exception as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries * 5, 300)) from None


@shared_task
def webhooks_retry_task() -> int:
    """Beat: requeue failed events (and any stuck in received) for another attempt, up to 10 each."""
    return webhook_events_retry()


@shared_task
def orders_reconcile_task() -> dict:
    return orders_reconcile()


@shared_task
def refunds_resume_task() -> dict:
    """Beat: finish admin refunds left pending by a process that died after recording them."""
    return refunds_resume()


@shared_task(bind=True, max_retries=None, acks_late=True)
def webhook_deliver_task(self, delivery_id: int) -> None:
    """Deliver one customer webhook event; a failed attempt is recorded on the delivery and retried with
    exponential back-off until ALERT_WEBHOOK_MAX_ATTEMPTS (then the delivery is marked failed)."""
    delivery = webhook_deliver(delivery_id=delivery_id)
    if delivery is not None and delivery.status == WebhookDelivery.Status.PENDING:
        raise self.retry(countdown=retry_delay(delivery.attempts))


@shared_task
def webhook_deliveries_requeue_task() -> int:
    """Beat: queue again customer webhook deliveries whose task was lost."""
    return webhook_deliveries_requeue()
@shared_task(acks_late=True)
def autotopup_charge_task(order_id: int) -> None:
    """Charge the saved card for one auto top-up order. Harmless when run twice (the order's state and the
    idempotency key); a charge left without an answer is resumed by autotopups_resume_task."""
    autotopup_charge(order_id=order_id)


@shared_task(bind=True, max_retries=5, acks_late=True)
def autotopup_card_fetch_task(self, user_id: int) -> None:
    """Read the card a completed setup saved (brand, last four digits) from Stripe."""
    try:
        card_fetch(user_id=user_id)
    except Exception as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries * 5, 300)) from None


@shared_task
def autotopups_resume_task() -> dict:
    """Beat: ask Stripe again (same idempotency key) about auto top-up charges left without an answer."""
    return autotopups_resume()
