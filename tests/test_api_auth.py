"""Who may call what (DESIGN.md section 9): every API endpoint with no auth, a plain sk- token, an sk- token
with account-read, and the console session. A leaked inference key exposes as little as possible."""

import json
from decimal import Decimal

import pytest
from django.test import Client

from billing.models import ApiToken, Generation
from billing.services.tokens import token_create
from referrals.selectors import referral_stats
from synstar.money import format_usd
from tests.api_world import make_world
from wallet.models import Redemption, TopUpOrder, Transaction

pytestmark = pytest.mark.django_db

NONE, PLAIN, READER, SESSION = "none", "plain", "reader", "session"


def state():
    return (ApiToken.objects.filter(deleted_at__isnull=True).count(), TopUpOrder.objects.count(),
            Redemption.objects.count(), Transaction.objects.count(), Generation.objects.count())


@pytest.fixture
def world(client):
    return make_world(client)


def call(world, caller: str, method: str, url: str, body=None):
    client = Client()
    headers = {}
    if caller == SESSION:
        client.force_login(world.user)
    elif caller in (PLAIN, READER):
        token = world.plain if caller == PLAIN else world.reader
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token.raw_key}"
    send = getattr(client, method.lower())
    if body is None:
        return send(url, **headers)
    return send(url, json.dumps(body), content_type="application/json", **headers)


def expect(response, status: int, code: str | None = None):
    assert response.status_code == status, (response.status_code, response.content[:300])
    if code is not None:
        assert response.json()["error"]["code"] == code


READS = ["/api/v1/wallet", "/api/v1/bills", "/api/v1/referrals"]


@pytest.mark.parametrize("url", READS)
def test_account_reads_need_the_session_or_account_read(world, url):
    expect(call(world, NONE, "GET", url), 401, "not_authenticated")
    expect(call(world, PLAIN, "GET", url), 403, "token_scope")
    expect(call(world, READER, "GET", url), 200)
    expect(call(world, SESSION, "GET", url), 200)


def test_a_refused_read_says_how_to_allow_it(world):
    message = call(world, PLAIN, "GET", "/api/v1/wallet").json()["error"]["message"]
    assert "Read account" in message


@pytest.fixture
def spare(world):
    token, _ = token_create(user=world.user, name="spare")
    return token


WRITES = [
    ("POST", "/api/v1/topups", {"amount": "10", "method": "stripe_card"}, 201),
    ("POST", "/api/v1/redemptions", "CODE", 201),
    ("POST", "/api/v1/referrals/transfer", {"amount": "2"}, 200),
    ("GET", "/api/v1/tokens", None, 200),
    ("POST", "/api/v1/tokens", {"name": "minted", "can_read_account": True}, 201),
    ("PATCH", "/api/v1/tokens/SPARE", {"name": "renamed", "can_read_account": True}, 200),
    ("DELETE", "/api/v1/tokens/SPARE", None, 204),
    ("GET", "/api/v1/invoice-requests", None, 200),
    ("GET", "/api/v1/refund-requests", None, 200),
    ("POST", "/api/v1/refund-requests", {"order": "none", "reason": "x"}, 404),
]


@pytest.mark.parametrize(("method", "url", "body", "ok"), WRITES, ids=[f"{m} {u}" for m, u, _, _ in WRITES])
def test_money_and_token_management_need_the_session(world, spare, method, url, body, ok):
    url = url.replace("SPARE", str(spare.pk))
    if body == "CODE":
        body = {"code": world.code}
    before, proceeds = state(), referral_stats(user=world.user).proceeds
    spare_before = ApiToken.objects.values().get(pk=spare.pk)
    expect(call(world, NONE, method, url, body), 401)
    expect(call(world, PLAIN, method, url, body), 403, "token_scope")
    expect(call(world, READER, method, url, body), 403, "token_scope")
    # Refused: nothing was created, redeemed, moved or changed.
    assert state() == before and referral_stats(user=world.user).proceeds == proceeds
    assert ApiToken.objects.values().get(pk=spare.pk) == spare_before
    expect(call(world, SESSION, method, url, body), ok)


def test_usage_with_a_plain_token_is_its_own_requests_only(world):
    mine = {world.generations["plain_held"], world.generations["plain_settled"]}
    expect(call(world, NONE, "GET", "/api/v1/usage"), 401)
    plain = call(world, PLAIN, "GET", "/api/v1/usage").json()["results"]
    assert {r["id"] for r in plain} == mine
    everything = mine | {world.generations["reader_held"]}
    assert {r["id"] for r in call(world, READER, "GET", "/api/v1/usage").json()["results"]} == everything
    assert {r["id"] for r in call(world, SESSION, "GET", "/api/v1/usage").json()["results"]} == everything
    # Asking for another token's records is refused, not silently answered.
    expect(call(world, PLAIN, "GET", f"/api/v1/usage?token={world.reader.pk}"), 403, "token_scope")
    assert {r["id"] for r in call(world, PLAIN, "GET", f"/api/v1/usage?token={world.plain.pk}").json()["results"]} == mine
    assert call(world, READER, "GET", f"/api/v1/usage?token={world.plain.pk}").json()["results"]


def test_generation_lookup_with_a_plain_token_is_its_own_requests_only(world):
    own, other = world.generations["plain_settled"], world.generations["reader_held"]
    expect(call(world, NONE, "GET", f"/v1/generation?id={own}"), 401)
    expect(call(world, PLAIN, "GET", f"/v1/generation?id={own}"), 200)
    expect(call(world, PLAIN, "GET", f"/v1/generation?id={other}"), 404, "generation_not_found")
    expect(call(world, READER, "GET", f"/v1/generation?id={own}"), 200)
    expect(call(world, SESSION, "GET", f"/v1/generation?id={other}"), 200)


def test_key_describes_the_calling_token(world):
    expect(call(world, NONE, "GET", "/api/v1/key"), 401)
    body = call(world, PLAIN, "GET", "/api/v1/key").json()
    assert (body["name"], body["prefix"], body["quota"], body["can_read_account"]) == (
        "script", world.plain.raw_key[:10], "1.00", False)
    plain = ApiToken.objects.get(pk=world.plain.pk)
    assert plain.used > 0 and plain.held > 0  # one settled request, one in flight
    assert (body["used"], body["held"], body["unlimited"]) == (format_usd(plain.used, places=None),
                                                               format_usd(plain.held, places=None), False)
    assert Decimal(body["remaining"]) == Decimal(body["quota"]) - Decimal(body["used"]) - Decimal(body["held"])
    reader = call(world, READER, "GET", "/api/v1/key").json()
    assert (reader["name"], reader["unlimited"], reader["remaining"], reader["can_read_account"]) == (
        "dashboard", True, None, True)
    assert "key" not in body and "key_hash" not in body
    expect(call(world, SESSION, "GET", "/api/v1/key"), 403, "token_required")


def test_credits_is_the_balance_for_any_token(world):
    expect(call(world, NONE, "GET", "/api/v1/credits"), 401)
    wallet = call(world, SESSION, "GET", "/api/v1/wallet").json()
    for caller in (PLAIN, READER, SESSION):
        body = call(world, caller, "GET", "/api/v1/credits").json()
        assert body == {"currency": "USD", "balance": wallet["balance"], "held": wallet["held"],
                        "available": wallet["available"], "in_debt": False}


def test_pricing_is_public(world):
    for caller in (NONE, PLAIN, READER, SESSION):
        expect(call(world, caller, "GET", "/api/v1/pricing"), 200)
