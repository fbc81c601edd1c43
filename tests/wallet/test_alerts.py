"""The low-balance alert (once per crossing, re-armed by a top-up), token alerts at 80% and 100%, and signed
customer webhooks delivered to a local HTTP server with retries recorded."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.test import override_settings

from billing.models import ApiToken
from billing.services.tokens import token_update
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from tests.metering import meter_hold, meter_ready, meter_settle
from wallet.models import Account, AlertSettings, WebhookDelivery
from wallet.services.alerts import (
    BALANCE_HOOKS,
    alert_settings_update,
    balance_crossings,
    balance_hooks_register,
    webhook_deliver,
    webhook_sign,
    webhook_test_send,
)
from wallet.services.topups import order_complete, order_create
from wallet.tasks import webhook_deliver_task


def _account(user) -> Account:
    return Account.objects.get(user=user, kind="main")


def _low_emails(user):
    return [m for m in mail.outbox if user.email in m.to and "balance is low" in m.subject]


# --- the receiving end -------------------------------------------------------------------------------


class Receiver:
    """A local HTTP server standing in for a customer's endpoint: records what it gets, answers `statuses`
    in turn (then 200)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/synstar"


def verify(headers: dict, body: bytes, secret: str) -> dict:
    """What a customer's endpoint does (Stripe's scheme): recompute v1 over "t.body" and compare."""
    parts = dict(p.split("=", 1) for p in headers["synstar-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return json.loads(body)


# --- low balance -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_low_balance_alerts_once_per_crossing_and_a_top_up_rearms_it(topup_config, django_capture_on_commit_callbacks):
    user = make_user(balance="10")  # $10.50 with the signup grant
    alert_settings_update(user=user, threshold=usd("8"), webhook_url="")
    meter_ready(user)
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("2")), usd("2"))  # $8.50: still above
    assert _low_emails(user) == []
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("1")), usd("1"))  # $7.50: crossed
    assert len(_low_emails(user)) == 1
    assert "$7.50" in _low_emails(user)[0].body and "$8.00" in _low_emails(user)[0].body
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("1")), usd("1"))  # $6.50: still below, no second email
    assert len(_low_emails(user)) == 1
    assert AlertSettings.objects.get(user=user).low_balance_alerted
    # A completed top-up brings it back above: re-armed; the next crossing alerts again.
    order = order_create(user=user, amount=usd("5"), method_code="stripe_card")
    with django_capture_on_commit_callbacks(execute=True):
        order_complete(order_id=order.pk, amount_cents=500, currency="usd")
    assert not AlertSettings.objects.get(user=user).low_balance_alerted
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("4")), usd("4"))  # $7.50 again
    assert len(_low_emails(user)) == 2


@pytest.mark.django_db
def test_the_default_threshold_applies_and_zero_turns_it_off(django_capture_on_commit_callbacks):
    quiet, default = make_user(), make_user()  # $0.50 each: below the default $5
    alert_settings_update(user=quiet, threshold=0, webhook_url="")
    with django_capture_on_commit_callbacks(execute=True):
        balance_crossings(account_ids=[_account(quiet).pk, _account(default).pk])
    assert _low_emails(quiet) == [] and len(_low_emails(default)) == 1
    with override_settings(LOW_BALANCE_THRESHOLD_USD="0.10"), django_capture_on_commit_callbacks(execute=True):
        balance_crossings(account_ids=[_account(default).pk])  # now above the default: re-armed
    assert not AlertSettings.objects.get(user=default).low_balance_alerted


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_send_one_alert():
    user = make_user()  # $0.50, below the default $5
    account_id = _account(user).pk
    mail.outbox.clear()
    results, errors = run_concurrently(lambda: balance_crossings(account_ids=[account_id]), [() for _ in range(16)])
    assert errors == []
    assert len(_low_emails(user)) == 1


@pytest.mark.django_db
def test_balance_hooks_see_every_account_checked():
    seen = []

    def hook(*, states):
        seen.extend((s.account_id, s.available) for s in states)

    balance_hooks_register(hook)
    try:
        user = make_user(balance="3")
        balance_crossings(account_ids=[_account(user).pk])
    finally:
        BALANCE_HOOKS.remove(hook)
    assert seen == [(_account(user).pk, usd("3.50"))]


# --- token alerts ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_alerts_at_80_and_100_percent_once_each(django_capture_on_commit_callbacks):
    user = make_user(balance="20")
    meter_ready(user)
    token = ApiToken.objects.get(user=user, name="ledger-test")
    token_update(token_id=token.pk, user=user, quota=usd("1"), budget=usd("0.50"), budget_period="day")

    def token_emails():
        return [m.subject for m in mail.outbox if "API token" in m.subject]

    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("0.30")), usd("0.30"))
    assert token_emails() == []
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("0.12")), usd("0.12"))  # budget 84%
    assert token_emails() == ["[SynStar] API token ledger-test has used 80% of its daily budget"]
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("0.08")), usd("0.08"))  # budget 100%
    assert token_emails()[1:] == ["[SynStar] API token ledger-test has used 100% of its daily budget"]
    # Tomorrow: the budget's alerts are armed again; the quota reaches 80% ($0.80 of $1).
    token.refresh_from_db()
    ApiToken.objects.filter(pk=token.pk).update(period_start=token.period_start - timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("0.30")), usd("0.30"))
    assert token_emails()[2:] == ["[SynStar] API token ledger-test has used 80% of its quota"]
    with django_capture_on_commit_callbacks(execute=True):
        meter_settle(meter_hold(user, usd("0.01")), usd("0.01"))
    assert len(token_emails()) == 3


# --- webhooks ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(ALERT_WEBHOOK_ALLOW_PRIVATE=True)
def test_a_signed_event_reaches_the_endpoint_and_is_logged():
    user = make_user(balance="10")
    with Receiver() as receiver:
        settings_row, secret = alert_settings_update(user=user, threshold=None, webhook_url=receiver.url)
        assert secret.startswith("whsec_") and AlertSettings.objects.get(user=user).webhook_secret == secret
        delivery = webhook_test_send(user=user)
        delivery = webhook_deliver(delivery_id=delivery.pk)
        assert len(receiver.received) == 1
        headers, body = receiver.received[0]
        event = verify(headers, body, secret)
    assert event["type"] == "webhook.test" and event["id"] == delivery.event_id
    assert delivery.status == "succeeded" and delivery.attempts == 1 and delivery.response_status == 200
    # A wrong secret does not verify.
    with pytest.raises(AssertionError):
        verify(headers, body, "whsec_wrong")


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    sig = webhook_sign(secret="whsec_test", body=b'{"a":1}', timestamp=1700000000)
    assert sig == "t=1700000000,v1=" + hmac.new(b"whsec_test", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()


@pytest.mark.django_db
@override_settings(ALERT_WEBHOOK_ALLOW_PRIVATE=True, ALERT_WEBHOOK_MAX_ATTEMPTS=5)
def test_failed_deliveries_are_retried_by_the_task_and_recorded():
    user = make_user(balance="10")
    with Receiver(statuses=[500, 503]) as receiver:
        _, secret = alert_settings_update(user=user, threshold=None, webhook_url=receiver.url)
        delivery = webhook_test_send(user=user)
        webhook_deliver_task.apply(args=[delivery.pk])  # eager: retries run at once, back-off not waited for
        delivery.refresh_from_db()
        assert [verify(h, b, secret)["id"] for h, b in receiver.received] == [delivery.event_id] * 3
    assert delivery.status == "succeeded" and delivery.attempts == 3 and delivery.response_status == 200


@pytest.mark.django_db
@override_settings(ALERT_WEBHOOK_ALLOW_PRIVATE=True, ALERT_WEBHOOK_MAX_ATTEMPTS=3)
def test_a_delivery_that_keeps_failing_is_marked_failed_with_the_error():
    user = make_user(balance="10")
    with Receiver(statuses=[500] * 10) as receiver:
        alert_settings_update(user=user, threshold=None, webhook_url=receiver.url)
        delivery = webhook_test_send(user=user)
        webhook_deliver_task.apply(args=[delivery.pk])
        assert len(receiver.received) == 3
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 3 and delivery.last_error == "HTTP 500"


@pytest.mark.django_db
def test_private_addresses_are_refused_in_production():
    user = make_user()
    from synstar.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        alert_settings_update(user=user, threshold=None, webhook_url="http://127.0.0.1:9/x")  # http refused
    alert_settings_update(user=user, threshold=None, webhook_url="https://127.0.0.1:9/x")
    delivery = webhook_deliver(delivery_id=webhook_test_send(user=user).pk)
    assert delivery.attempts == 1 and "public address" in delivery.last_error


@pytest.mark.django_db
@override_settings(ALERT_WEBHOOK_ALLOW_PRIVATE=True)
def test_low_balance_and_topup_events_are_sent_to_the_webhook(topup_config, django_capture_on_commit_callbacks):
    user = make_user()
    alert_settings_update(user=user, threshold=usd("1"), webhook_url="https://example.invalid/hook")
    with django_capture_on_commit_callbacks(execute=False):
        balance_crossings(account_ids=[_account(user).pk])
        order = order_create(user=user, amount=usd("5"), method_code="stripe_card")
        order_complete(order_id=order.pk, amount_cents=500, currency="usd")
    deliveries = list(WebhookDelivery.objects.filter(user=user).order_by("id"))
    assert [d.event_type for d in deliveries] == ["balance.low", "topup.completed"]
    assert deliveries[0].payload["data"]["available"] == "0.50" and deliveries[0].payload["data"]["threshold"] == "1.00"
    assert deliveries[1].payload["data"]["order_no"] == order.order_no
    assert deliveries[1].payload["data"]["credited"] == "5.00"


@pytest.mark.django_db
@override_settings(ALERT_WEBHOOK_ALLOW_PRIVATE=True)
def test_deliveries_whose_task_was_lost_are_queued_again(monkeypatch):
    from django.utils import timezone

    from wallet.services import alerts

    queued = []
    monkeypatch.setattr(alerts, "_enqueue_delivery", queued.append)  # the broker: record what is queued
    user = make_user()
    alert_settings_update(user=user, threshold=None, webhook_url="https://hooks.example.com/x")
    fresh, lost, retrying = (webhook_test_send(user=user) for _ in range(3))
    WebhookDelivery.objects.filter(pk__in=[lost.pk, retrying.pk]).update(created_at=timezone.now() - timedelta(hours=1))
    WebhookDelivery.objects.filter(pk=retrying.pk).update(attempts=2, last_attempt_at=timezone.now() - timedelta(minutes=2))
    assert alerts.webhook_deliveries_requeue() == 1 and queued == [lost.pk]
    WebhookDelivery.objects.filter(pk=retrying.pk).update(last_attempt_at=timezone.now() - timedelta(hours=1))
    queued.clear()
    assert alerts.webhook_deliveries_requeue() == 2 and sorted(queued) == sorted([lost.pk, retrying.pk])
