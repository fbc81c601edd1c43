"""The metering and user APIs over HTTP: shapes, status codes, and bad input that writes nothing."""

import json
from contextlib import contextmanager

import pytest
from django.db import connection

import billing.services.tokens
from billing.models import ApiToken, Generation, TokenGroup
from billing.services.metering import generation_settle
from synstar.money import usd
from tests.factories import make_user
from wallet.models import Hold, Transaction

pytestmark = pytest.mark.django_db


def post(client, url, body, key, raw=False):
    return client.post(url, body if raw else json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def counts():
    return Generation.objects.count(), Hold.objects.count(), Transaction.objects.count()


@pytest.fixture
def funded(make_token):
    user = make_user(balance="9.50")
    return user, make_token(user)


def test_hold_report_and_lookup_over_http(client, gateway, funded):
    user, token = funded
    created = post(client, "/api/v1/metering/holds",
                   {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 1000, "max_output_tokens": 500}, gateway.raw_key)
    assert created.status_code == 201
    body = created.json()
    assert (body["state"], body["estimated_cost"], body["available"]) == ("held", "0.0075", "9.9925")
    assert (body["model"], body["group"], body["rate"]) == ("gpt-4o", "default", "1.0000")

    reported = post(client, f"/api/v1/metering/holds/{body['id']}/usage",
                    {"status": "succeeded", "input_tokens": 1000, "output_tokens": 100}, gateway.raw_key)
    assert reported.status_code == 202 and reported.json()["state"] == "reported"

    lookup = client.get(f"/v1/generation?id={body['id']}", HTTP_AUTHORIZATION=f"Bearer {token.raw_key}").json()
    assert (lookup["state"], lookup["final_cost"]) == ("reported", None)
    generation_settle(generation_id=Generation.objects.get(public_id=body["id"]).pk)
    lookup = client.get(f"/v1/generation?id={body['id']}", HTTP_AUTHORIZATION=f"Bearer {token.raw_key}").json()
    assert (lookup["state"], lookup["final_cost"], lookup["charge_basis"]) == ("settled", "0.0035", "reported")
    assert lookup["usage"] == {"input_tokens": 1000, "output_tokens": 100, "cached_tokens": 0, "units": "0"}
    assert lookup["estimate"] == {"input_tokens": 1000, "max_output_tokens": 500, "units": "0"}
    assert lookup["token"]["prefix"] == token.raw_key[:10] and lookup["group"] == "default"
    assert lookup["listed_price"] == {"billing_type": "per_token", "input_per_million": "2.50",
                                      "output_per_million": "10.00", "cached_input_per_million": "1.25"}

    client.force_login(user)  # the session sees it too
    assert client.get(f"/v1/generation?id={body['id']}").json()["id"] == body["id"]


def test_refusal_bodies_carry_status_code_and_available(client, gateway, make_token):
    user = make_user()  # $0.50
    token = make_token(user, quota=usd("0.30"))
    response = post(client, "/api/v1/metering/holds",
                    {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 100, "max_output_tokens": 40_000}, gateway.raw_key)
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "token_quota_exceeded"
    response = post(client, "/api/v1/metering/holds",
                    {"token": make_token(user).raw_key, "model": "gpt-4o", "input_tokens": 100, "max_output_tokens": 60_000}, gateway.raw_key)
    assert response.status_code == 402
    assert response.json()["error"] | {"message": ""} == {
        "type": "payment_required", "code": "insufficient_balance", "message": "", "available": "0.50"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "gpt-9"}, 400, "model_not_found"),
        ({"input_tokens": -5}, 400, "validation_error"),
        ({"max_output_tokens": 10**10}, 400, "validation_error"),
        ({"input_tokens": "lots"}, 400, "validation_error"),
        ({"units": "NaN"}, 400, "validation_error"),
        ({"client_ip": "not-an-ip"}, 400, "validation_error"),
        ({"token": "sk-not-a-real-key"}, 401, "invalid_api_key"),
        ({"token": None}, 400, "validation_error"),
    ],
)
def test_bad_hold_input_is_a_clear_4xx_and_writes_nothing(client, gateway, funded, body, status, code):
    _, token = funded
    before = counts()
    payload = {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 10, **body}
    response = post(client, "/api/v1/metering/holds", payload, gateway.raw_key)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input_tokens": -5}, "input_tokens: Ensure this value is greater than or equal to 0."),
        ({"max_output_tokens": 10**10}, "max_output_tokens: Ensure this value is less than or equal to 100000000."),
        ({"input_tokens": "lots"}, "input_tokens: A valid integer is required."),
        ({"input_tokens": True}, "input_tokens: A valid integer is required."),
        ({"units": "NaN"}, "units: A valid number is required."),
        ({"units": "1.1234567"}, "units: Ensure that there are no more than 6 decimal places."),
        ({"client_ip": "not-an-ip"}, "client_ip: Enter a valid IPv4 or IPv6 address."),
        ({"token": None}, "token: This field may not be null."),
        ({"model": ""}, "model: This field may not be blank."),
        ({"model": "x" * 101}, "model: Ensure this field has no more than 100 characters."),
        ({"endpoint": None}, "endpoint: This field may not be null."),
        ({"request_id": "r" * 101}, "request_id: Ensure this field has no more than 100 characters."),
        (["not", "a", "dict"], "Invalid data. Expected a dictionary, but got list."),
    ],
)
def test_bad_hold_input_errors_keep_their_exact_shape(client, gateway, funded, body, message):
    _, token = funded
    payload = body if isinstance(body, list) else {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 10, **body}
    response = post(client, "/api/v1/metering/holds", payload, gateway.raw_key)
    assert (response.status_code, response.json()) == (
        400, {"error": {"type": "invalid_request_error", "code": "validation_error", "message": message}})


@contextmanager
def statements():
    """The SQL statements sent meanwhile, but for savepoints (the test's transaction turns the service's
    into savepoints) and Django's per-request connection health check (a bare SELECT 1 on the driver)."""
    sent: list[str] = []

    def record(execute, sql, *args):
        if "SAVEPOINT" not in sql:
            sent.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(record):
        yield sent


def test_one_hold_request_runs_three_statements(client, gateway, funded, monkeypatch):
    """The token's lookup, the account's hold, the token's hold with the generation. The gateway key is
    looked up once per process and GATEWAY_KEY_CACHE_SECONDS, so only the first request reads it."""
    monkeypatch.setattr(billing.services.tokens, "_gateways", {})
    _, token = funded
    body = {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 500, "max_output_tokens": 500}
    with statements() as first:
        assert post(client, "/api/v1/metering/holds", body, gateway.raw_key).status_code == 201
    with statements() as second:
        assert post(client, "/api/v1/metering/holds", body, gateway.raw_key).status_code == 201
    assert len(first) == 4 and "billing_gatewaykey" in first[0]
    assert len(second) == 3, second


def test_malformed_json_is_a_400(client, gateway):
    before = counts()
    response = post(client, "/api/v1/metering/holds", '{"token": ', gateway.raw_key, raw=True)
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
    assert counts() == before


def test_keys_in_the_wrong_place_are_told_apart(client, gateway, funded):
    _, token = funded
    as_gateway = post(client, "/api/v1/metering/holds", {"token": token.raw_key, "model": "gpt-4o"}, token.raw_key)
    assert as_gateway.status_code == 401 and as_gateway.json()["error"]["code"] == "wrong_key_type"
    as_user = client.get("/api/v1/wallet", HTTP_AUTHORIZATION=f"Bearer {gateway.raw_key}")
    assert as_user.status_code == 401 and as_user.json()["error"]["code"] == "wrong_key_type"
    token_field = post(client, "/api/v1/metering/holds", {"token": gateway.raw_key, "model": "gpt-4o"}, gateway.raw_key)
    assert token_field.status_code == 401 and token_field.json()["error"]["code"] == "wrong_key_type"
    no_auth = client.post("/api/v1/metering/holds", "{}", content_type="application/json")
    assert no_auth.status_code == 401
    bad_scheme = client.get("/api/v1/wallet", HTTP_AUTHORIZATION=f"Token {token.raw_key}")
    assert bad_scheme.status_code == 401 and bad_scheme.json()["error"]["code"] == "invalid_authorization"


def test_sk_token_reads_the_wallet_only_with_account_read(client, funded):
    _, token = funded
    response = client.get("/api/v1/wallet", HTTP_AUTHORIZATION=f"Bearer {token.raw_key}")
    assert response.status_code == 403 and response.json()["error"]["code"] == "token_scope"
    ApiToken.objects.filter(pk=token.pk).update(can_read_account=True)
    response = client.get("/api/v1/wallet", HTTP_AUTHORIZATION=f"Bearer {token.raw_key}")
    assert response.status_code == 200 and response.json()["balance"] == "10.00"


def test_another_users_generation_is_not_found(client, gateway, funded, make_token):
    _, token = funded
    created = post(client, "/api/v1/metering/holds", {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 10},
                   gateway.raw_key).json()
    stranger = make_token(make_user())
    response = client.get(f"/v1/generation?id={created['id']}", HTTP_AUTHORIZATION=f"Bearer {stranger.raw_key}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "generation_not_found"
    assert client.get("/v1/generation?id=abc", HTTP_AUTHORIZATION=f"Bearer {stranger.raw_key}").status_code == 400


def test_report_validation_and_other_gateways(client, gateway, funded):
    from billing.services.tokens import gateway_key_create

    _, token = funded
    created = post(client, "/api/v1/metering/holds", {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 10},
                   gateway.raw_key).json()
    url = f"/api/v1/metering/holds/{created['id']}/usage"
    for body in [{"status": "done"}, {"status": "succeeded", "output_tokens": -1}, {"status": "succeeded", "input_tokens": 1, "cached_tokens": 2}]:
        response = post(client, url, body, gateway.raw_key)
        assert response.status_code == 400, body
    _, other_key = gateway_key_create(name="other-edge")
    assert post(client, url, {"status": "succeeded"}, other_key).status_code == 404
    assert Generation.objects.get(public_id=created["id"]).state == "held"


def test_usage_api_filters_and_keyset_pages(client, gateway, funded, make_token):
    user, token = funded
    other = make_token(user, name="other")
    for _i in range(5):
        post(client, "/api/v1/metering/holds", {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 10}, gateway.raw_key)
    post(client, "/api/v1/metering/holds", {"token": other.raw_key, "model": "gpt-4o-mini", "input_tokens": 10}, gateway.raw_key)
    ApiToken.objects.filter(pk=token.pk).update(can_read_account=True)  # sees every token's requests
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token.raw_key}"}
    first = client.get("/api/v1/usage?limit=4", **auth).json()
    assert len(first["results"]) == 4 and first["next_before"]
    second = client.get(f"/api/v1/usage?limit=4&before={first['next_before']}", **auth).json()
    assert len(second["results"]) == 2 and second["next_before"] is None
    assert {r["id"] for r in first["results"]}.isdisjoint({r["id"] for r in second["results"]})
    mini = client.get("/api/v1/usage?model=gpt-4o-mini", **auth).json()["results"]
    assert [r["token"] for r in mini] == ["other"]
    assert client.get(f"/api/v1/usage?token={other.pk}", **auth).json()["results"][0]["model"] == "gpt-4o-mini"
    assert client.get("/api/v1/usage?state=settled", **auth).json()["results"] == []
    bad = client.get("/api/v1/usage?date_from=yesterday", **auth)
    assert bad.status_code == 400


def test_pricing_api_shows_listed_and_group_prices(client, catalog):
    anonymous = client.get("/api/v1/pricing").json()
    gpt = next(m for m in anonymous["models"] if m["model"] == "gpt-4o")
    assert gpt["listed"]["input_per_million"] == "2.50"
    assert list(gpt["groups"]) == ["default"]
    user = make_user()
    TokenGroup.objects.get(name="discount").allowed_users.add(user)
    client.force_login(user)
    gpt = next(m for m in client.get("/api/v1/pricing").json()["models"] if m["model"] == "gpt-4o")
    assert gpt["groups"]["discount"] == {"rate": "0.3", "input_per_million": "0.75", "output_per_million": "3.00",
                                         "cached_input_per_million": "0.375"}
    assert len({m["category"] for m in anonymous["models"]}) >= 9
