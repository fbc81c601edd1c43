"""Auto top-up with a saved card (DESIGN.md section 11; issue 13).

The flow:

1. **Save a card.** `card_setup_start` makes sure the user has a Stripe Customer and opens a Checkout
   Session in `setup` mode. Stripe's signed `checkout.session.completed` (mode=setup) names the SetupIntent;
   `card_saved` records it (in the webhook's transaction) and queues `card_fetch`, which reads the
   SetupIntent's payment method (brand, last four digits) outside any transaction.
2. **Trigger.** After each settlement batch commits, `autotopup_check(account_ids=...)` looks (one query)
   for accounts of that batch whose available balance is below their threshold. For each, `_autotopup_start`
   locks the user's AutoTopUp row (alone: no other lock is held), re-checks, checks the daily cap, and
   records the intent: a Pending top-up order with `source=auto`. A partial unique index allows one open
   auto order per user, whatever races.
3. **Charge.** After that commit, `autotopup_charge` (a Celery task) creates the off-session PaymentIntent
   with the idempotency key `autotopup-<order no>`, outside any transaction, then records the answer:
   paid -> `order_complete` (the same function, bonus rules and ledger posting as every top-up); declined or
   authentication required -> the order fails, auto top-up turns off and the user is emailed; no answer ->
   the order stays Pending and `autotopups_resume` asks again with the same key (Stripe replays the first
   PaymentIntent, so a process killed between the call and the commit never charges twice).
4. **Webhook.** `payment_intent.succeeded` / `payment_intent.payment_failed` for our PaymentIntents go through
   the normal webhook path (wallet/services/webhooks.py) to `order_complete` / `autotopup_failed`, so a lost
   answer still ends in the credit, once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from synstar.accounts.selectors import TOP_UP, account_action_check, account_policy_for
from synstar.db import atomic_with_retry
from synstar.errors import InvalidRequest, NotFound
from synstar.i18n import user_language
from synstar.money import InvalidAmount, format_usd, to_cents
from wallet import providers
from wallet.models import Account, AutoTopUp, TopUpOrder
from wallet.providers import stripe_client
from wallet.providers.base import OffSessionCharge, ProviderError, SavedCard
from wallet.selectors.autotopup import autotopup_available, card_method, charged_today, daily_cap_max
from wallet.services.topups import bonus_for, order_close, order_complete, order_no_generate, topup_validate

logger = logging.getLogger(__name__)

OPEN = (TopUpOrder.Status.PENDING, TopUpOrder.Status.PAID)
# A charge left without an answer (the process died, Stripe could not be reached) is asked again after this;
# Stripe keeps idempotency keys for 24 hours, so one still unanswered after RESUME_GIVE_UP is cancelled.
RESUME_AFTER = timedelta(seconds=60)
RESUME_GIVE_UP = timedelta(hours=23)


class AutoTopUpUnavailable(InvalidRequest):
    code = "autotopup_unavailable"


def idempotency_key(order: TopUpOrder) -> str:
    return f"autotopup-{order.order_no}"


def _setting_for(user_id: int) -> AutoTopUp:
    setting, _created = AutoTopUp.objects.get_or_create(user_id=user_id, defaults={"daily_cap": daily_cap_max()})
    return setting


# --- settings ---------------------------------------------------------------------------------------


def autotopup_update(*, user, enabled: bool, threshold: int, amount: int, daily_cap: int) -> AutoTopUp:
    """Save the rule; turning it on needs a saved card. If the balance is already below the threshold, the
    first top-up starts at once."""
    if threshold <= 0:
        raise InvalidAmount(_("The threshold must be more than $0.00."), code="invalid_threshold")
    topup_validate(amount)
    cap_max = daily_cap_max()
    if daily_cap < amount:
        raise InvalidAmount(_("The daily cap must be at least the top-up amount."), code="daily_cap_too_small")
    if daily_cap > cap_max:
        raise InvalidAmount(_("The daily cap can be at most $%(cap)s.") % {"cap": format_usd(cap_max, grouping=True)},
                            code="daily_cap_too_large")
    if enabled:
        if not autotopup_available():
            raise AutoTopUpUnavailable(_("Auto top-up needs card payments through Stripe, which are not available."))
        account_action_check(user=user, action=TOP_UP)
    with transaction.atomic():
        setting = _setting_for(user.pk)
        setting = AutoTopUp.objects.select_for_update().get(pk=setting.pk)
        if enabled and not setting.has_card:
            raise InvalidRequest(_("Save a card first, then turn auto top-up on."), code="no_saved_card")
        setting.enabled, setting.threshold, setting.amount, setting.daily_cap = enabled, threshold, amount, daily_cap
        if enabled:
            setting.disabled_reason, setting.disabled_at = "", None
        setting.save(update_fields=["enabled", "threshold", "amount", "daily_cap", "disabled_reason", "disabled_at", "updated_at"])
    if enabled:
        account_id = Account.objects.filter(user=user, kind=Account.Kind.MAIN).values_list("pk", flat=True).first()
        if account_id is not None:
            autotopup_check(account_ids=[account_id])
    return setting


def autotopup_turn_off(*, user_ids, reason: str) -> int:
    """Admin: turn auto top-up off for these users (the reason is shown to them)."""
    return AutoTopUp.objects.filter(user_id__in=list(user_ids), enabled=True).update(
        enabled=False, disabled_reason=reason[:255], disabled_at=timezone.now())


# --- saving a card -----------------------------------------------------------------------------------


def card_setup_start(*, user, base_url: str = "") -> str:
    """Open Stripe Checkout in setup mode for the user's card; returns the URL to send the user to."""
    if not autotopup_available():
        raise AutoTopUpUnavailable(_("Saving a card needs card payments through Stripe, which are not available."))
    account_action_check(user=user, action=TOP_UP)
    setting = _setting_for(user.pk)
    if not setting.stripe_customer_id:
        customer_id = stripe_client.customer_create(user_id=user.pk, email=user.email)  # idempotent per user
        AutoTopUp.objects.filter(pk=setting.pk, stripe_customer_id="").update(stripe_customer_id=customer_id)
        setting.refresh_from_db()
    wallet = base_url + reverse("console:wallet")
    checkout = stripe_client.card_setup_create(
        user_id=user.pk, customer_id=setting.stripe_customer_id,
        success_url=f"{wallet}?card=saved#autotopup", cancel_url=f"{wallet}?card=cancelled#autotopup",
    )
    AutoTopUp.objects.filter(pk=setting.pk).update(setup_checkout_id=checkout.checkout_id)
    return checkout.url


def card_saved(*, provider: str, customer_id: str, setup_intent_id: str, checkout_id: str) -> AutoTopUp:
    """A setup Checkout Session completed (webhook, in its transaction): remember the SetupIntent and read
    the card from it after the commit (an HTTP call has no place inside the transaction)."""
    setting = AutoTopUp.objects.select_for_update().filter(stripe_customer_id=customer_id).first() if customer_id else None
    if provider != "stripe" or setting is None or not setup_intent_id:
        raise NotFound(f"No auto top-up customer matches this {provider} setup session.", code="unknown_customer")
    setting.setup_intent_id, setting.setup_checkout_id = setup_intent_id, checkout_id or setting.setup_checkout_id
    setting.save(update_fields=["setup_intent_id", "setup_checkout_id", "updated_at"])
    user_id = setting.user_id
    transaction.on_commit(lambda: _enqueue("autotopup_card_fetch_task", user_id))
    return setting


def card_fetch(*, user_id: int) -> AutoTopUp:
    """Read the card the last completed setup saved (brand, last four digits) and make it the user's card."""
    setting = AutoTopUp.objects.get(user_id=user_id)
    intent_id = setting.setup_intent_id
    if not intent_id:
        return setting
    card: SavedCard = stripe_client.card_from_setup(setup_intent_id=intent_id, user_id=user_id)
    old = setting.payment_method_id
    AutoTopUp.objects.filter(pk=setting.pk, setup_intent_id=intent_id).update(
        payment_method_id=card.payment_method_id, card_brand=card.brand[:32], card_last4=card.last4[:4],
        card_exp_month=card.exp_month, card_exp_year=card.exp_year, updated_at=timezone.now(),
    )
    if old and old != card.payment_method_id:
        stripe_client.card_detach(payment_method_id=old)  # the card it replaces is no longer kept at Stripe
    setting.refresh_from_db()
    return setting


def card_remove(*, user) -> AutoTopUp:
    """Forget the saved card (and detach it at Stripe); auto top-up turns off."""
    setting = _setting_for(user.pk)
    old = setting.payment_method_id
    AutoTopUp.objects.filter(pk=setting.pk).update(
        enabled=False, payment_method_id="", card_brand="", card_last4="", card_exp_month=None, card_exp_year=None,
        setup_intent_id="", updated_at=timezone.now(),
    )
    if old:
        stripe_client.card_detach(payment_method_id=old)
    setting.refresh_from_db()
    return setting


# --- the trigger ---------------------------------------------------------------------------------------


def autotopup_check(*, account_ids) -> list[int]:
    """After balances went down (a settlement batch committed): start an auto top-up for each of these
    accounts whose available balance is below its owner's threshold. One query when none is; returns the
    ids of the orders started. Never raises: settlement must not fail because of a top-up."""
    try:
        open_auto = TopUpOrder.objects.filter(user_id=OuterRef("user_id"), source=TopUpOrder.Source.AUTO, status__in=OPEN)
        users = list(
            Account.objects.filter(pk__in=list(account_ids), kind=Account.Kind.MAIN, user__autotopup__enabled=True)
            .annotate(avail=F("balance") - F("held"))
            .filter(avail__lt=F("user__autotopup__threshold"))
            .exclude(Exists(open_auto))
            .values_list("user_id", flat=True)
        )
        return [order_id for user_id in users if (order_id := _autotopup_start(user_id=user_id)) is not None]
    except Exception:
        logger.exception("auto top-up check failed for accounts %s", list(account_ids)[:20])
        return []


@atomic_with_retry
def _autotopup_start(*, user_id: int) -> int | None:
    """Record the intent of one auto top-up: a Pending order, queued for charging after the commit. The
    user's AutoTopUp row lock serialises the triggers of one user, so the cap and the one-in-flight rule
    are checked and kept together; the partial unique index is the backstop."""
    setting = AutoTopUp.objects.select_for_update().filter(user_id=user_id, enabled=True).select_related("user").first()
    if setting is None or not setting.has_card:
        return None
    account = Account.objects.get(user_id=user_id, kind=Account.Kind.MAIN)
    if account.balance - account.held >= setting.threshold:
        return None
    if TopUpOrder.objects.filter(user_id=user_id, source=TopUpOrder.Source.AUTO, status__in=OPEN).exists():
        return None
    if account_policy_for(user=setting.user).refusal(TOP_UP) is not None:
        return None
    cap = min(setting.daily_cap, daily_cap_max())
    if charged_today(user_id=user_id) + setting.amount > cap:
        logger.info("auto top-up for user %s skipped: the daily cap of $%s is reached", user_id, format_usd(cap))
        return None
    method = card_method()
    if method is None or not providers.configured("stripe"):
        return None
    try:
        with transaction.atomic():
            order = TopUpOrder.objects.create(
                order_no=order_no_generate(), user_id=user_id, method=method, provider="stripe", amount=setting.amount,
                bonus=bonus_for(setting.amount), source=TopUpOrder.Source.AUTO,
            )
    except IntegrityError:  # another auto top-up is in flight (the partial unique index)
        return None
    transaction.on_commit(lambda: _enqueue("autotopup_charge_task", order.pk))
    logger.info("auto top-up %s started for user %s ($%s)", order.order_no, user_id, format_usd(order.amount))
    return order.pk


def _enqueue(task_name: str, arg: int) -> None:
    from wallet.tasks import (  # a real cycle: the task module calls this service
        autotopup_card_fetch_task,
        autotopup_charge_task,
    )

    task = {"autotopup_charge_task": autotopup_charge_task, "autotopup_card_fetch_task": autotopup_card_fetch_task}[task_name]
    try:
        task.delay(arg)
    except Exception:
        logger.exception("could not queue %s(%s); the resume task will pick it up", task_name, arg)


# --- the charge -----------------------------------------------------------------------------------------


def autotopup_charge(*, order_id: int) -> TopUpOrder:
    """Charge the saved card for a Pending auto top-up order (outside any transaction), then record the
    answer. Harmless when run twice: an answered order is left alone, and the idempotency key makes Stripe
    return the first PaymentIntent to a repeated call."""
    order = TopUpOrder.objects.get(pk=order_id, source=TopUpOrder.Source.AUTO)
    if order.status != TopUpOrder.Status.PENDING or order.checkout_id:
        return order
    setting = AutoTopUp.objects.get(user_id=order.user_id)
    if not setting.payment_method_id or not setting.stripe_customer_id:
        return order_close(order_id=order.pk, status=TopUpOrder.Status.CANCELLED, reason=_("No card is saved for auto top-up."))
    try:
        answer = stripe_client.offsession_charge(
            order, customer_id=setting.stripe_customer_id, payment_method_id=setting.payment_method_id,
            amount_cents=to_cents(order.amount), idempotency_key=idempotency_key(order),
        )
    except ProviderError as exc:
        TopUpOrder.objects.filter(pk=order.pk).update(provider_error=exc.detail[:4000])
        if exc.retryable:  # outcome unknown: ask again later with the same key (autotopups_resume)
            return order
        # Stripe refused the request itself (e.g. the card is no longer attached): a failure like a decline.
        return order_close(order_id=order.pk, status=TopUpOrder.Status.FAILED, reason=failure_message(""))
    return charge_record(order_id=order.pk, answer=answer)


def charge_record(*, order_id: int, answer: OffSessionCharge) -> TopUpOrder:
    """Record Stripe's answer to the charge. Each step is a compare-and-swap or idempotent, so the webhook
    may have come first (then the order is already completed and nothing changes)."""
    if answer.payment_id:
        TopUpOrder.objects.filter(pk=order_id, checkout_id="").update(checkout_id=answer.payment_id)
        TopUpOrder.objects.filter(pk=order_id, payment_id="").update(payment_id=answer.payment_id)
    if answer.state == "paid":
        return order_complete(order_id=order_id, amount_cents=answer.amount_cents or 0, currency=answer.currency or "",
                              payment_id=answer.payment_id)
    if answer.state == "failed":
        return autotopup_failed(order_id=order_id, failure_code=answer.failure_code)
    return TopUpOrder.objects.get(pk=order_id)  # processing: the webhook completes or fails it


def failure_message(code: str) -> str:
    """Why a charge failed, in our words (never the bank's or Stripe's text)."""
    if code == "authentication_required":
        return _("Your bank asked to confirm the payment, which cannot be done while you are away. "
                 "Top up once from the wallet page, then turn auto top-up on again.")
    if code == "expired_card":
        return _("Your saved card has expired.")
    if code in ("card_declined", "insufficient_funds", "do_not_honor", "generic_decline", "lost_card", "stolen_card"):
        return _("Your card was declined.")
    return _("The charge to your saved card failed.")


def autotopup_failed(*, order_id: int, failure_code: str = "") -> TopUpOrder:
    """The card was declined or needs authentication (an answer, or payment_intent.payment_failed): the order
    fails; the closed hook turns auto top-up off and emails the user."""
    if failure_code:
        TopUpOrder.objects.filter(pk=order_id, status=TopUpOrder.Status.PENDING).update(provider_error=f"Stripe: {failure_code}")
    return order_close(order_id=order_id, status=TopUpOrder.Status.FAILED, reason=failure_message(failure_code))


def autotopup_order_closed(*, order: TopUpOrder) -> None:
    """Top-up hook (an order went Pending -> Failed/Cancelled, in that transaction): a failed auto top-up
    turns auto top-up off, once, and the user is emailed after the commit."""
    if order.source != TopUpOrder.Source.AUTO or order.status != TopUpOrder.Status.FAILED:
        return
    reason = order.failure_reason or failure_message("")
    turned_off = AutoTopUp.objects.filter(user_id=order.user_id, enabled=True).update(
        enabled=False, disabled_reason=reason[:255], disabled_at=timezone.now())
    if turned_off:
        order_id = order.pk
        transaction.on_commit(lambda: _failure_email(order_id=order_id))


def _failure_email(*, order_id: int) -> None:
    order = TopUpOrder.objects.select_related("user").get(pk=order_id)
    with translation.override(user_language(order.user)):  # in the account's language
        _failure_email_send(order=order)


def _failure_email_send(*, order) -> None:
    setting = AutoTopUp.objects.get(user_id=order.user_id)
    card = f"{setting.card_brand.title()} •••• {setting.card_last4}" if setting.card_last4 else _("your saved card")
    url = settings.SITE_URL.rstrip("/") + reverse("console:wallet") + "#autotopup"
    subject = _("Auto top-up is off: the charge to your card failed")
    body = _(
        "We tried to top up your SynStar balance by $%(amount)s (order %(order_no)s) with %(card)s, "
        "and the charge failed: %(reason)s\n\n"
        "Auto top-up is now turned off, so no further charges will be tried. Your balance was not changed. "
        "To turn it on again, or to save another card, open %(url)s"
    ) % {"amount": format_usd(order.amount, grouping=True), "order_no": order.order_no, "card": card,
         "reason": order.failure_reason, "url": url}
    try:
        send_mail(settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + subject, body, None, [order.user.email])
    except Exception:
        logger.exception("could not email user %s that auto top-up %s failed", order.user_id, order.order_no)


def autotopups_resume(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: auto top-up orders whose charge has no answer (the process died between recording the intent
    and recording Stripe's answer, or Stripe could not be reached) are charged again with the same
    idempotency key, which returns the first PaymentIntent if there was one. Past Stripe's key lifetime an
    unanswered order is cancelled (the webhook would still credit it if Stripe had charged)."""
    now = now or timezone.now()
    counts = {"resumed": 0, "cancelled": 0}
    stuck = TopUpOrder.objects.filter(source=TopUpOrder.Source.AUTO, status=TopUpOrder.Status.PENDING, checkout_id="",
                                      created_at__lt=now - RESUME_AFTER).order_by("id").values_list("pk", "created_at")[:200]
    for order_id, created_at in list(stuck):
        if created_at < now - RESUME_GIVE_UP:
            order_close(order_id=order_id, status=TopUpOrder.Status.CANCELLED, reason=_("Stripe could not be reached for this charge."))
            counts["cancelled"] += 1
            continue
        try:
            autotopup_charge(order_id=order_id)
            counts["resumed"] += 1
        except Exception:
            logger.exception("resuming auto top-up order %s failed", order_id)
    return counts
