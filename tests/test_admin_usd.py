"""Operators type and read dollars in admin (synstar/admin_shared.py): every money form stores the nanos the
dollars mean and shows them back as dollars, in the change form and in the list; bad input is a form error
that changes nothing; the JSON lists are widgets that round-trip; the operator never shows up for the user."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import RequestFactory
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from billing.models import ApiToken, BillingTier, ModelPrice, TokenGroup
from billing.services.tokens import token_create
from referrals.models import RewardRule
from synstar.admin_shared import UsdField
from synstar.money import MAX_NANOS, usd
from tests.metering import meter_hold, meter_settle
from wallet.models import Account, AutoTopUp, BonusRule, PaymentMethod, TopUpOrder, Transaction
from wallet.models.ledger import SystemAccount
from wallet.selectors.ledger import wallet_activity, wallet_statistics
from wallet.services.ledger import Line, posting_create, system_account_id

pytestmark = pytest.mark.django_db


def _input_value(page: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert match, f"no input {name}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else ""


def _model_form(**overrides):
    data = {
        "name": "gpt-test", "display_name": "", "provider": "", "category": "chat", "billing_type": "per_token",
        "input_per_million": "1.99", "output_per_million": "200", "cached_input_per_million": "",
        "long_context_threshold": "", "long_input_per_million": "", "long_output_per_million": "",
        "long_cached_input_per_million": "", "request_price": "0", "unit": "", "unit_price": "0",
        "minimum_charge": "0.000002", "default_max_output_tokens": "4096", "is_active": "on", "sort_order": "100",
    }
    return {**data, **overrides}


@pytest.fixture
def operator(client, admin_user):
    client.force_login(admin_user)
    return client


def test_model_price_in_dollars_round_trips(operator):
    done = operator.post(reverse("admin:billing_modelprice_add"), _model_form())
    assert done.status_code == 302, done.content.decode()[:3000]
    model = ModelPrice.objects.get(name="gpt-test")
    assert (model.input_per_million, model.output_per_million, model.minimum_charge) == (
        usd("1.99"), usd("200"), usd("0.000002"))
    assert model.cached_input_per_million is None  # blank stays "same as input"
    page = operator.get(reverse("admin:billing_modelprice_change", args=[model.pk])).content.decode()
    assert _input_value(page, "input_per_million") == "1.99"
    assert _input_value(page, "output_per_million") == "200.00"
    assert _input_value(page, "minimum_charge") == "0.000002"
    assert "Input per million (USD)" in page
    listing = operator.get(reverse("admin:billing_modelprice_changelist")).content.decode()
    assert "$1.99" in listing and "$200.00" in listing


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("input_per_million", "abc", "decimal number"),
    ("input_per_million", "-1", "must not be negative"),
    ("output_per_million", "1.0000000001", "more than 9 decimal places"),
    ("output_per_million", "1,99", "Use a dot for decimals"),
    ("request_price", "1e5", "decimal number"),
    ("unit_price", "2000000000", "too large"),
    ("input_per_million", "", "Enter an amount in USD"),
])
def test_bad_money_is_a_form_error_and_changes_nothing(operator, field, typed, message):
    response = operator.post(reverse("admin:billing_modelprice_add"), _model_form(**{field: typed}))
    assert response.status_code == 200 and message in response.content.decode()
    assert not ModelPrice.objects.filter(name="gpt-test").exists()
    model = ModelPrice.objects.create(name="kept", category="chat", billing_type="per_token", input_per_million=usd("3"))
    edit = operator.post(reverse("admin:billing_modelprice_change", args=[model.pk]),
                         _model_form(name="kept", **{field: typed}))
    assert edit.status_code == 200 and message in edit.content.decode()
    model.refresh_from_db()
    assert model.input_per_million == usd("3")


def test_thousands_separators_and_a_dollar_sign_are_understood(operator):
    operator.post(reverse("admin:billing_modelprice_add"), _model_form(input_per_million="$1,250.50"))
    assert ModelPrice.objects.get(name="gpt-test").input_per_million == usd("1250.50")


def test_bonus_rule_threshold_of_200_means_200_dollars(operator):
    done = operator.post(reverse("admin:wallet_bonusrule_add"),
                         {"match": "above", "amount": "200", "bonus_fixed": "7.5", "bonus_percent": "0", "is_active": "on"})
    assert done.status_code == 302
    rule = BonusRule.objects.get(match="above", amount=usd("200"))
    assert rule.bonus_fixed == usd("7.50")
    page = operator.get(reverse("admin:wallet_bonusrule_change", args=[rule.pk])).content.decode()
    assert (_input_value(page, "amount"), _input_value(page, "bonus_fixed")) == ("200.00", "7.50")
    listing = operator.get(reverse("admin:wallet_bonusrule_changelist")).content.decode()
    assert "$200.00" in listing and "$7.50" in listing
    # A zero threshold is refused: a bonus rule matches a top-up amount.
    zero = operator.post(reverse("admin:wallet_bonusrule_add"),
                         {"match": "exact", "amount": "0", "bonus_fixed": "1", "bonus_percent": "0"})
    assert zero.status_code == 200 and "greater than zero" in zero.content.decode()
    assert BonusRule.objects.filter(amount=0).count() == 0


def test_reward_rule_in_dollars(operator):
    done = operator.post(reverse("admin:referrals_rewardrule_add"), {
        "name": "spring", "commission_percent": "10", "first_topup_reward": "1.5", "window_days": "",
        "cap_per_invitee": "", "min_transfer": "5",
    })
    assert done.status_code == 302, done.content.decode()[:2000]
    rule = RewardRule.objects.get(name="spring")
    assert (rule.first_topup_reward, rule.cap_per_invitee, rule.min_transfer) == (usd("1.5"), None, usd("5"))
    page = operator.get(reverse("admin:referrals_rewardrule_change", args=[rule.pk])).content.decode()
    assert (_input_value(page, "first_topup_reward"), _input_value(page, "min_transfer")) == ("1.50", "5.00")
    assert _input_value(page, "cap_per_invitee") == ""
    listing = operator.get(reverse("admin:referrals_rewardrule_changelist")).content.decode()
    assert "$1.50" in listing and "$5.00" in listing


def _token_form(token, **overrides):
    data = {"name": token.name, "group": token.group_id, "quota": "", "is_enabled": "on", "expires_at_0": "",
            "expires_at_1": "", "allowed_models": [], "allowed_ips": ""}
    return {**data, **overrides}


@pytest.fixture
def token(make_user):
    ModelPrice.objects.create(name="model-a", category="chat", billing_type="per_token")
    ModelPrice.objects.create(name="model-b", category="chat", billing_type="per_token")
    tier = BillingTier.objects.create(name="std", rate=1)
    TokenGroup.objects.create(name="default", tier=tier, is_default=True)
    made, _ = token_create(user=make_user(), name="ci")
    return made


def test_token_quota_and_allow_lists_round_trip(operator, token):
    url = reverse("admin:billing_apitoken_change", args=[token.pk])
    done = operator.post(url, _token_form(token, quota="25.5", allowed_models=["model-b", "model-a"],
                                          allowed_ips="203.0.113.7\n10.0.0.0/24\n\n2001:db8::/32"))
    assert done.status_code == 302, done.content.decode()[:3000]
    token.refresh_from_db()
    assert token.quota == usd("25.50")
    assert token.allowed_models == ["model-a", "model-b"]
    assert token.allowed_ips == ["10.0.0.0/24", "2001:db8::/32", "203.0.113.7/32"]
    page = operator.get(url).content.decode()
    assert _input_value(page, "quota") == "25.50"
    assert re.search(r'<option value="model-a" selected>', page) and re.search(r'<option value="model-b" selected>', page)
    assert "10.0.0.0/24\n2001:db8::/32\n203.0.113.7/32" in page
    listing = operator.get(reverse("admin:billing_apitoken_changelist")).content.decode()
    assert "$25.50" in listing
    # Saved again unchanged, nothing moves; blank quota means unlimited.
    operator.post(url, _token_form(token, quota="", allowed_models=token.allowed_models,
                                   allowed_ips="\n".join(token.allowed_ips)))
    token.refresh_from_db()
    assert token.quota is None and token.allowed_ips == ["10.0.0.0/24", "2001:db8::/32", "203.0.113.7/32"]
    assert "unlimited" in operator.get(reverse("admin:billing_apitoken_changelist")).content.decode()


def test_bad_ip_or_model_or_quota_is_an_error_that_names_it(operator, token):
    url = reverse("admin:billing_apitoken_change", args=[token.pk])
    bad_ip = operator.post(url, _token_form(token, quota="5", allowed_ips="10.0.0.1\n10.0.0.300\nexample.com"))
    text = bad_ip.content.decode()
    assert bad_ip.status_code == 200
    assert "Line 2: “10.0.0.300” is not an IP address or CIDR range" in text and "Line 3: “example.com”" in text
    bad_model = operator.post(url, _token_form(token, allowed_models=["no-such-model"]))
    assert bad_model.status_code == 200 and "Select a valid choice" in bad_model.content.decode()
    ApiToken.objects.filter(pk=token.pk).update(used=usd("3"))
    low = operator.post(url, _token_form(token, quota="2.99"))
    assert low.status_code == 200 and "cannot be below what this token has already used ($3.00" in low.content.decode()
    token.refresh_from_db()
    assert (token.quota, token.allowed_ips, token.allowed_models) == (None, [], [])


def test_saving_a_token_in_admin_keeps_usage_settled_meanwhile(operator, token):
    url = reverse("admin:billing_apitoken_change", args=[token.pk])
    operator.get(url)  # the operator opens the form...
    ApiToken.objects.filter(pk=token.pk).update(used=usd("1.25"), held=usd("0.50"))  # ...requests settle meanwhile
    operator.post(url, _token_form(token, quota="10"))
    token.refresh_from_db()
    assert (token.quota, token.used, token.held) == (usd("10"), usd("1.25"), usd("0.50"))


def test_payment_method_countries_are_a_multi_select(operator):
    url = reverse("admin:wallet_paymentmethod_add")
    form = operator.get(url).content.decode()
    assert '<option value="CN">China</option>' in form
    done = operator.post(url, {"code": "alipay-x", "name": "Alipay", "provider": "stripe", "provider_method": "alipay",
                               "countries": ["HK", "CN"], "is_enabled": "on", "sort_order": "1"})
    assert done.status_code == 302
    method = PaymentMethod.objects.get(code="alipay-x")
    assert method.countries == ["CN", "HK"] and method.available_in("cn") and not method.available_in("US")
    page = operator.get(reverse("admin:wallet_paymentmethod_change", args=[method.pk])).content.decode()
    assert '<option value="CN" selected>China</option>' in page
    assert "CN, HK" in operator.get(reverse("admin:wallet_paymentmethod_changelist")).content.decode()
    bad = operator.post(reverse("admin:wallet_paymentmethod_change", args=[method.pk]),
                        {"code": "alipay-x", "name": "Alipay", "provider": "stripe", "provider_method": "alipay",
                         "countries": ["XX"], "sort_order": "1"})
    assert bad.status_code == 200 and "Select a valid choice" in bad.content.decode()
    method.refresh_from_db()
    assert method.countries == ["CN", "HK"]


def test_code_batch_value_in_dollars(operator):
    from wallet.models import CodeBatch

    operator.post(reverse("admin:wallet_codebatch_add"), {
        "campaign": "spring", "value": "2.5", "count": "3", "max_uses": "1", "per_account_limit": "1", "submission_key": "s"})
    batch = CodeBatch.objects.get()
    assert batch.value == usd("2.50")
    assert "$2.50" in operator.get(reverse("admin:wallet_codebatch_changelist")).content.decode()
    assert "$2.50" in operator.get(reverse("admin:wallet_codebatch_change", args=[batch.pk])).content.decode()
    bad = operator.post(reverse("admin:wallet_codebatch_add"), {
        "campaign": "x", "value": "abc", "count": "3", "max_uses": "1", "per_account_limit": "1", "submission_key": "t"})
    assert bad.status_code == 200 and "decimal number" in bad.content.decode() and CodeBatch.objects.count() == 1


def _adjust(operator, user, **fields):
    url = reverse("admin:accounts_user_changelist")
    data = {"action": "adjust_balance_action", "_selected_action": [user.pk], "apply": "1", "idempotency_key": "k",
            "reason": "internal: ticket 4411, approved by finance", "user_reason": "", **fields}
    return operator.post(url, data, follow=True)


def test_adjustment_in_dollars_with_a_reason_for_the_user_and_no_operator(operator, admin_user, make_user):
    user = make_user()
    page = _adjust(operator, user, amount="12.34", user_reason="Credit for the outage on 3 May").content.decode()
    assert "Adjusted 1 account(s) by $12.34" in page
    assert wallet_statistics(user=user).balance == usd("12.84")
    txn = Transaction.objects.get(kind="adjustment")
    assert (txn.user_reason, txn.reason, txn.actor) == (
        "Credit for the outage on 3 May", "internal: ticket 4411, approved by finance", admin_user)
    assert admin_user.email not in txn.description
    # The operator reads it back in dollars, with both reasons and who did it.
    listing = operator.get(reverse("admin:wallet_transaction_changelist")).content.decode()
    assert "Credit for the outage on 3 May" in listing and admin_user.email in listing
    account = Account.objects.get(user=user, kind="main")
    assert "$12.84" in operator.get(reverse("admin:wallet_account_change", args=[account.pk])).content.decode()
    # The user reads the reason for them, never the internal note or the operator.
    [row, *_] = wallet_activity(user=user)
    assert (row.description, row.user_reason, row.amount) == ("Credit for the outage on 3 May",
                                                              "Credit for the outage on 3 May", usd("12.34"))
    operator.force_login(user)
    seen = "".join(operator.get(url).content.decode() for url in (
        "/", "/wallet/", "/bills/", "/invite/", "/api/v1/wallet", "/api/v1/bills", "/api/v1/referrals", "/api/v1/credits"))
    assert "Credit for the outage on 3 May" in seen
    assert admin_user.email not in seen and "ticket 4411" not in seen


def test_adjustment_without_a_user_reason_and_older_ones_naming_the_operator(operator, admin_user, make_user):
    user = make_user()
    _adjust(operator, user, amount="-0.25")
    # An adjustment written before user_reason existed: its description named the operator.
    with transaction.atomic():
        posting_create(
            kind=Transaction.Kind.ADJUSTMENT, idempotency_key="legacy", description=f"Adjustment by {admin_user.email}",
            reason="old", actor=admin_user,
            lines=[Line(system_account_id(SystemAccount.ADJUSTMENTS), -usd("1")),
                   Line(Account.objects.get(user=user, kind="main").pk, usd("1"))],
        )
    # Both read as an adjustment with no detail: neither the operator nor the internal note.
    rows = wallet_activity(user=user)[:2]
    assert [(r.kind, r.description) for r in rows] == [("adjustment", ""), ("adjustment", "")]
    operator.force_login(user)
    page = operator.get("/").content.decode()
    assert "Adjustment" in page and admin_user.email not in page and "old" not in page.split("Recent activity")[-1][:4000]


def test_adjustment_bad_amount_changes_nothing(operator, make_user):
    user = make_user()
    for amount, message in [("abc", "decimal number"), ("0", "greater than zero"), ("1.0000000001", "9 decimal places"),
                            ("", "Enter an amount in USD")]:
        assert message in _adjust(operator, user, amount=amount).content.decode()
    assert not Transaction.objects.filter(kind="adjustment").exists()


def test_read_only_money_is_shown_in_dollars(operator, make_user):
    user = make_user()
    method = PaymentMethod.objects.create(code="card", name="Card", provider="stripe", provider_method="card")
    order = TopUpOrder.objects.create(order_no="T-1", user=user, method=method, provider="stripe", amount=usd("100"),
                                      bonus=usd("3"))
    listing = operator.get(reverse("admin:wallet_topuporder_changelist")).content.decode()
    assert "$100.00" in listing and "100000000000" not in listing
    page = operator.get(reverse("admin:wallet_topuporder_change", args=[order.pk])).content.decode()
    assert "$100.00" in page and "$3.00" in page and "100000000000" not in page and "3000000000" not in page
    entries = operator.get(reverse("admin:wallet_entry_changelist")).content.decode()
    assert "$0.50" in entries  # the signup grant
    # A settled request: its estimate, charge, hold and listed price in dollars.
    generation = meter_hold(user, usd("0.25"))
    meter_settle(generation, usd("0.125"))
    page = operator.get(reverse("admin:billing_generation_change", args=[generation.pk])).content.decode()
    assert "$0.25" in page and "$0.125" in page and "unit price: $0.00001" in page and "250000000" not in page
    hold = operator.get(reverse("admin:wallet_hold_change", args=[generation.hold_id])).content.decode()
    assert "$0.25" in hold and "$0.125" in hold and "125000000" not in hold


def test_every_admin_page_opens_and_shows_no_raw_nanos(operator, admin_user, token, make_user):
    """Each registered model's list, add form and a change page answer (no 500) after the USD changes."""
    from django.contrib import admin

    user = make_user(balance="1234.5")
    method = PaymentMethod.objects.create(code="card", name="Card", provider="stripe", provider_method="card", countries=["US"])
    TopUpOrder.objects.create(order_no="T-9", user=user, method=method, provider="stripe", amount=usd("1234.5"))
    TopUpOrder.objects.create(order_no="A-9", user=user, method=method, provider="stripe", amount=usd("1234.5"),
                              source="auto", status="failed")
    AutoTopUp.objects.create(user=user, threshold=usd("1234.5"), amount=usd("1234.5"), daily_cap=usd("1234.5"))
    BonusRule.objects.create(match="exact", amount=usd("100"), bonus_fixed=usd("3"))
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    for model, model_admin in list(admin.site._registry.items()):
        opts = model._meta
        listing = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert listing.status_code == 200, opts.label
        assert "1234500000000" not in listing.content.decode(), opts.label
        add = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        assert add.status_code in (200, 403), opts.label
        obj = model_admin.get_queryset(request).first()  # what the admin lists (a proxy may filter)
        if obj is not None:
            page = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
            assert page.status_code == 200, opts.label
            assert "1234500000000" not in page.content.decode(), opts.label


@given(st.integers(min_value=-MAX_NANOS, max_value=MAX_NANOS))
def test_any_amount_shown_in_a_usd_field_reads_back_as_the_same_nanos(nanos):
    field = UsdField(allow_negative=True, allow_zero=True, required=False)
    shown = field.prepare_value(nanos)
    assert field.clean(shown) == nanos
    assert field.clean(f"${shown}" if nanos >= 0 else f"-${shown[1:]}") == nanos
    assert not field.has_changed(nanos, shown)


@given(st.text(max_size=30))
def test_any_text_is_nanos_or_a_form_error(text):
    field = UsdField(required=False)
    try:
        value = field.clean(text)
    except ValidationError:
        return
    assert value is None or (isinstance(value, int) and 0 <= value <= MAX_NANOS)
