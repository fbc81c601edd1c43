"""Refund requests (issue 13): what the page says is refundable, that nothing moves before approval, that
approval re-checks and runs the refund service once, and the races around it."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from synstar.errors import Conflict, InvalidRequest, NotFound
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from tests.wallet.test_refunds_and_reconcile import paid_stripe_order
from wallet.models import Account, Refund, RefundRequest, SystemAccount
from wallet.selectors.ledger import ledger_problems, wallet_statistics
from wallet.selectors.refund_requests import refundable_orders
from wallet.services.ledger import debit_create
from wallet.services.refund_requests import (
    business_days_after,
    refund_request_approve,
    refund_request_create,
    refund_request_reject,
)
from wallet.services.topups import order_complete, order_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(settings, topup_config):
    settings.SIGNUP_GRANT_USD = "0"
    settings.REFUND_TARGET_BUSINESS_DAYS = 3


def completed_order(user, amount="100"):
    order = order_create(user=user, amount=usd(amount), method_code="stripe_card")  # the sandbox takes it
    order_complete(order_id=order.pk, amount_cents=int(usd(amount) // 10_000_000), currency="usd", payment_id="sbx_pi_x")
    order.refresh_from_db()
    return order


def spend(user, amount, key=None):
    debit_create(user=user, amount=usd(amount), sink=SystemAccount.REVENUE, kind="debit",
                 idempotency_key=key or f"spend:{user.pk}:{amount}")


def test_business_days_skip_the_weekend():
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert business_days_after(friday, 3) == datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # Wednesday
    assert business_days_after(friday, 0) == friday


def test_the_page_shows_what_is_refundable_under_the_refund_rules(client, setup):
    user = make_user()
    order = completed_order(user, "100")  # $100 + $3 bonus
    spend(user, "50")
    [row] = refundable_orders(user=user)
    assert (row.quote.bonus, row.quote.cash, row.used) == (usd("3"), usd("50"), usd("50"))
    client.force_login(user)
    page = client.get("/refunds/").content.decode()
    assert order.order_no in page and "$50.00" in page and "$3.00" in page
    assert "within 3 business days" in page


def test_asking_moves_nothing_and_approval_refunds_what_is_left(client, setup, admin_user, django_capture_on_commit_callbacks):
    user = make_user(email="want-back@example.com")
    order = completed_order(user, "100")
    spend(user, "50")
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/refunds/", {"order": order.order_no, "reason": "We moved to another provider."})
    assert response.status_code == 302
    request = RefundRequest.objects.get()
    assert (request.status, request.quoted) == ("requested", usd("50"))
    assert request.due_at > request.created_at + timedelta(days=2)
    assert wallet_statistics(user=user).balance == usd("53")  # nothing leaves before approval
    assert "We received your refund request" in mail.outbox[-1].subject
    page = client.get("/refunds/").content.decode()
    assert "Requested" in page and "decision by" in page

    spend(user, "20", key="more")  # spent meanwhile: no longer refundable
    with django_capture_on_commit_callbacks(execute=True):
        approved = refund_request_approve(request_id=request.pk, actor=admin_user)
    assert approved.status == "approved"
    refund = Refund.objects.get()
    assert (refund.bonus_removed, refund.base_removed, refund.status) == (usd("3"), usd("30"), "succeeded")
    assert wallet_statistics(user=user).balance == 0
    assert mail.outbox[-1].to == ["want-back@example.com"] and "approved" in mail.outbox[-1].subject
    assert "$30.00" in mail.outbox[-1].body
    # approving again refunds nothing more
    assert refund_request_approve(request_id=request.pk, actor=admin_user).status == "approved"
    assert Refund.objects.count() == 1
    with pytest.raises(Conflict):  # decided: it cannot be rejected afterwards
        refund_request_reject(request_id=request.pk, actor=admin_user, reason="too late")
    page = client.get("/refunds/").content.decode()
    assert "Approved" in page


def test_approval_when_everything_was_spent_refunds_nothing_and_says_so(setup, admin_user, django_capture_on_commit_callbacks):
    user = make_user()
    order = completed_order(user, "10")
    request = refund_request_create(user=user, order_no=order.order_no, reason="not needed")
    spend(user, "10")
    with django_capture_on_commit_callbacks(execute=True):
        result = refund_request_approve(request_id=request.pk, actor=admin_user)
    assert result.status == "failed" and "Nothing is refundable" in result.reject_reason
    assert Refund.objects.count() == 0 and wallet_statistics(user=user).balance == 0
    assert "Nothing is refundable" in mail.outbox[-1].body


def test_reject_with_a_reason(client, setup, admin_user, django_capture_on_commit_callbacks):
    user = make_user(email="no@example.com")
    order = completed_order(user)
    request = refund_request_create(user=user, order_no=order.order_no, reason="changed my mind")
    with pytest.raises(InvalidRequest):
        refund_request_reject(request_id=request.pk, actor=admin_user, reason="")
    with django_capture_on_commit_callbacks(execute=True):
        refund_request_reject(request_id=request.pk, actor=admin_user, reason="Promotional credit is not refundable.")
    assert mail.outbox[-1].to == ["no@example.com"] and "Promotional credit is not refundable." in mail.outbox[-1].body
    assert refund_request_approve(request_id=request.pk, actor=admin_user).status == "rejected"  # decided: nothing happens
    assert Refund.objects.count() == 0 and wallet_statistics(user=user).balance == usd("103")
    client.force_login(user)
    page = client.get("/refunds/").content.decode()
    assert "Rejected" in page and "Promotional credit is not refundable." in page


def test_bad_requests_are_refused(client, setup):
    user, other = make_user(), make_user()
    order = completed_order(user)
    theirs = completed_order(other)
    pending = order_create(user=user, amount=usd("5"), method_code="stripe_card")
    with pytest.raises(InvalidRequest):
        refund_request_create(user=user, order_no=order.order_no, reason="   ")
    with pytest.raises(NotFound):
        refund_request_create(user=user, order_no=theirs.order_no, reason="mine?")
    with pytest.raises(Conflict):
        refund_request_create(user=user, order_no=pending.order_no, reason="unpaid")
    refund_request_create(user=user, order_no=order.order_no, reason="first")
    with pytest.raises(Conflict) as exc:
        refund_request_create(user=user, order_no=order.order_no, reason="second")
    assert exc.value.code == "refund_request_open"
    client.force_login(user)
    response = client.post("/api/v1/refund-requests", {"order": "nope", "reason": "x"}, content_type="application/json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "order_not_found"
    response = client.post("/api/v1/refund-requests", {"order": order.order_no}, content_type="application/json")
    assert response.status_code == 400
    assert [r["status"] for r in client.get("/api/v1/refund-requests").json()] == ["requested"]
    assert RefundRequest.objects.count() == 1


def test_admin_overdue_filter_and_actions(client, setup, admin_user):
    user = make_user()
    late = refund_request_create(user=user, order_no=completed_order(user).order_no, reason="late one")
    RefundRequest.objects.filter(pk=late.pk).update(due_at=late.created_at - timedelta(days=1))
    fresh = refund_request_create(user=user, order_no=completed_order(user).order_no, reason="fresh one")
    client.force_login(admin_user)
    url = "/admin/wallet/refundrequest/"
    overdue = client.get(f"{url}?overdue=yes")
    assert list(overdue.context["cl"].result_list) == [late]
    assert list(client.get(f"{url}?overdue=no").context["cl"].result_list) == [fresh]
    client.post(url, {"action": "refund_request_approve_action", "_selected_action": [late.pk]})
    client.post(url, {"action": "refund_request_reject_action", "_selected_action": [fresh.pk], "apply": "1", "reason": "Duplicate"})
    late.refresh_from_db()
    fresh.refresh_from_db()
    assert (late.status, fresh.status, fresh.reject_reason) == ("approved", "rejected", "Duplicate")
    assert late.refund.base_removed == usd("100") and list(client.get(f"{url}?overdue=yes").context["cl"].result_list) == []


# --- races ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_admins_approving_at_once_refund_once(setup):
    admins = [make_user(is_staff=True) for _ in range(2)]
    user = make_user()
    order = completed_order(user, "100")
    request = refund_request_create(user=user, order_no=order.order_no, reason="twice")
    results, errors = run_concurrently(lambda admin: refund_request_approve(request_id=request.pk, actor=admin),
                                       [(a,) for a in admins * 4])
    assert errors == []
    assert {r.status for r in results} == {"approved"}
    assert Refund.objects.count() == 1 and wallet_statistics(user=user).balance == 0
    assert ledger_problems() == []


@pytest.mark.django_db(transaction=True)
def test_approval_racing_the_user_spending_never_overdraws(setup):
    admin = make_user(is_staff=True)
    for round_no in range(3):
        user = make_user()
        order = completed_order(user, "100")  # $103 with the bonus
        request = refund_request_create(user=user, order_no=order.order_no, reason=f"race {round_no}")
        calls = [("approve", 0)] + [("spend", i) for i in range(10)]

        def work(kind, i, user=user, request=request):
            if kind == "approve":
                return refund_request_approve(request_id=request.pk, actor=admin)
            return spend(user, "9", key=f"race:{user.pk}:{i}")

        results, errors = run_concurrently(work, calls)
        assert all(type(e).__name__ == "InsufficientBalance" for e in errors), errors
        account = Account.objects.get(user=user, kind=Account.Kind.MAIN)
        assert account.balance >= 0 and account.held == 0
        spent = usd("9") * (10 - len(errors))
        refund = Refund.objects.filter(order=order).first()
        removed = (refund.base_removed + refund.bonus_removed) if refund else 0
        assert account.balance == usd("103") - spent - removed
        request.refresh_from_db()
        assert request.status in ("approved", "failed")
        assert ledger_problems() == []


def test_approval_through_stripe_and_a_refusal_that_gives_the_credits_back(fake_stripe, settings, admin_user,
                                                                           django_capture_on_commit_callbacks):
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user(email="stripe-refund@example.com")
    accepted, refused = paid_stripe_order(fake_stripe, user, "100"), paid_stripe_order(fake_stripe, user, "20")
    first = refund_request_create(user=user, order_no=accepted.order_no, reason="done")
    second = refund_request_create(user=user, order_no=refused.order_no, reason="done too")
    assert refund_request_approve(request_id=first.pk, actor=admin_user).status == "approved"
    assert [r["amount"] for r in fake_stripe.refunds] == [10000]  # asked of Stripe over HTTP, once
    fake_stripe.refuse_refunds = True
    with django_capture_on_commit_callbacks(execute=True):
        result = refund_request_approve(request_id=second.pk, actor=admin_user)
    assert result.status == "failed" and "refused" in result.reject_reason
    assert Refund.objects.get(order=refused).status == "failed"
    assert wallet_statistics(user=user).balance == usd("20")  # the refused refund's credits are back
    assert "not approved" in mail.outbox[-1].subject


def test_an_approved_request_whose_refund_fails_later_says_so(setup, admin_user, django_capture_on_commit_callbacks):
    """The provider did not answer at approval (the refund stayed pending); refused later (by the resume task
    or a webhook), the credits come back and the request no longer says approved; the user is emailed."""
    from wallet.services.refund_requests import _approve
    from wallet.services.refunds import refund_fail

    user = make_user(email="later@example.com")
    order = completed_order(user, "50")
    request = refund_request_create(user=user, order_no=order.order_no, reason="not needed")
    with django_capture_on_commit_callbacks(execute=True):
        request, refund = _approve(request_id=request.pk, actor=admin_user)  # recorded, not yet answered
    assert request.status == "approved" and refund.status == "pending"
    assert wallet_statistics(user=user).balance == 0
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        refund_fail(refund_id=refund.pk, reason="Charge has already been refunded.", refused=True)
    request.refresh_from_db()
    assert request.status == "failed" and "refused" in request.reject_reason
    assert wallet_statistics(user=user).balance == usd("50")
    assert len(mail.outbox) == sent + 1 and mail.outbox[-1].to == ["later@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        refund_fail(refund_id=refund.pk, reason="again", refused=True)  # a second failure report changes nothing
    assert len(mail.outbox) == sent + 1
