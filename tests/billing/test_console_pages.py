import csv
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import ApiToken
from billing.services.metering import metering_hold
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_tokens_page_creates_a_token_and_shows_the_key_once(client, catalog):
    user = make_user()
    client.force_login(user)
    page = client.post("/tokens/", {"name": "backend", "group": "default", "unlimited": "", "quota": "7.50"}, follow=True)
    assert page.redirect_chain == [("/tokens/", 302)]
    body = page.content.decode()
    token = ApiToken.objects.get(user=user)
    key = page.context["new_key"]
    assert key.startswith("sk-") and key in body and "will not be shown again" in body
    assert token.quota == 7_500_000_000
    again = client.get("/tokens/").content.decode()
    assert key not in again and token.key_prefix in again


def test_tokens_page_form_errors_change_nothing(client, catalog):
    client.force_login(make_user())
    page = client.post("/tokens/", {"name": "x", "group": "default", "quota": ""})
    assert "Enter a quota, or tick Unlimited." in page.content.decode()
    page = client.post("/tokens/", {"name": "x", "group": "default", "quota": "abc"})
    assert "decimal number" in page.content.decode()
    assert not ApiToken.objects.exists()


def test_token_toggle_and_delete_with_htmx(client, make_token):
    user = make_user()
    token = make_token(user)
    client.force_login(user)
    row = client.post(f"/tokens/{token.pk}/toggle/", HTTP_HX_REQUEST="true").content.decode()
    assert "Disabled" in row and "<html" not in row
    assert not ApiToken.objects.get(pk=token.pk).is_enabled
    client.post(f"/tokens/{token.pk}/delete/", HTTP_HX_REQUEST="true")
    assert ApiToken.objects.get(pk=token.pk).deleted_at is not None
    assert client.post(f"/tokens/{token.pk}/toggle/").status_code == 404


def test_edit_page_refuses_quota_below_used(client, make_token):
    user = make_user()
    token = make_token(user, quota=5_000_000_000)
    ApiToken.objects.filter(pk=token.pk).update(used=3_000_000_000)
    client.force_login(user)
    page = client.post(f"/tokens/{token.pk}/edit/", {"name": "t", "group": "default", "quota": "2"})
    assert "cannot be below what this token has already used" in page.content.decode()
    assert ApiToken.objects.get(pk=token.pk).quota == 5_000_000_000


def _make_usage(gateway, token, n, model="gpt-4o"):
    for _ in range(n):
        metering_hold(gateway=gateway, token_key=token.raw_key, model_name=model, endpoint="/v1/chat/completions",
                      input_tokens=10, max_output_tokens=10)


def test_usage_page_filters_pages_and_exports(client, gateway, make_token):
    user = make_user(balance="10")
    token, other = make_token(user, name="alpha"), make_token(user, name="beta")
    _make_usage(gateway, token, 55)
    _make_usage(gateway, other, 3, model="gpt-4o-mini")
    client.force_login(user)
    first = client.get("/usage/")
    assert len(first.context["rows"]) == 50 and first.context["next_before"]
    second = client.get(f"/usage/?before={first.context['next_before']}")
    assert len(second.context["rows"]) == 8
    filtered = client.get(f"/usage/?model=gpt-4o-mini&token={other.pk}")
    assert {g.token.name for g in filtered.context["rows"]} == {"beta"} and len(filtered.context["rows"]) == 3
    assert "Pending reconciliation" in filtered.content.decode()
    export = b"".join(client.get("/usage/?model=gpt-4o-mini&format=csv").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(export)))
    assert len(rows) == 3 and rows[0]["model"] == "gpt-4o-mini" and rows[0]["state"] == "held"
    empty = client.get("/usage/?state=settled")
    assert "Nothing matches these filters." in empty.content.decode()


def test_usage_page_query_count_does_not_grow_with_rows(client, gateway, make_token):
    user = make_user(balance="10")
    token = make_token(user)
    client.force_login(user)
    _make_usage(gateway, token, 5)
    with CaptureQueriesContext(connection) as few:
        client.get("/usage/")
    _make_usage(gateway, token, 60)
    with CaptureQueriesContext(connection) as many:
        client.get("/usage/")
    assert len(many) == len(few)


def test_pricing_page_is_public_and_shows_group_prices(client, catalog):
    page = client.get("/pricing/").content.decode()
    assert "GPT-4o" in page and "$2.50 in" in page and "Sign in" in page
    user = make_user()
    from billing.models import TokenGroup

    TokenGroup.objects.get(name="discount").allowed_users.add(user)
    client.force_login(user)
    assert "$0.75 in" in client.get("/pricing/").content.decode()


def test_dashboard_shows_frozen_credit_pending_reconciliation(client, gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    _make_usage(gateway, token, 2)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "Pending reconciliation" in page and "$0.00" in page


def test_tokens_page_grants_account_read_per_token_and_shows_it(client, catalog):
    user = make_user()
    client.force_login(user)
    client.post("/tokens/", {"name": "script", "group": "default", "unlimited": "on"})
    client.post("/tokens/", {"name": "dashboard", "group": "default", "unlimited": "on", "can_read_account": "on"})
    tokens = {t.name: t for t in ApiToken.objects.filter(user=user)}
    assert (tokens["script"].can_read_account, tokens["dashboard"].can_read_account) == (False, True)
    page = client.get("/tokens/").content.decode()
    assert "Read account" in page and "Inference + account read" in page and ">Inference<" in page

    edit = client.get(f"/tokens/{tokens['dashboard'].pk}/edit/").content.decode()
    assert re.search(r'<input[^>]*name="can_read_account"[^>]*checked', edit)
    client.post(f"/tokens/{tokens['dashboard'].pk}/edit/", {"name": "dashboard", "group": "default", "unlimited": "on"})
    assert ApiToken.objects.get(pk=tokens["dashboard"].pk).can_read_account is False
