"""The OpenAPI schema is generated without a single drf-spectacular warning or error, and it tells the truth:
real responses of every operation (and of their errors) validate against it with openapi-core."""

import re

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

from synstar.money import usd
from tests.api_world import gateway_call, hold, make_world
from tests.fakes.providers import FakeStripe
from wallet.services.topups import order_complete, order_create

pytestmark = pytest.mark.django_db


def test_schema_generates_without_warnings_and_is_valid_openapi(tmp_path):
    GENERATOR_STATS.reset()  # the counts are per process; count this generation only
    call_command("spectacular", "--validate", "--file", str(tmp_path / "schema.yaml"))
    problems = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    assert problems == [], "drf-spectacular complained:\n" + "\n".join(problems)


def test_every_component_has_one_owner_and_both_bearer_schemes_are_declared(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer", "bearerFormat": "sk-..."}
    assert schemes["gatewayKey"] == {**schemes["gatewayKey"], "type": "http", "scheme": "bearer", "bearerFormat": "gw-..."}
    ops = {(m.upper(), p): op for p, item in schema["paths"].items() for m, op in item.items()}

    def body(method, path, status):
        content = ops[(method, path)]["responses"][status]["content"]["application/json"]["schema"]
        return content.get("$ref", "").rpartition("/")[2] or content

    # Each operation shows its own fields (these all used to share "Input"/"Output" with the metering hold).
    assert body("POST", "/api/v1/topups", "201") == "Bill"
    assert ops[("POST", "/api/v1/topups")]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TopUpCreateInput")
    assert body("POST", "/api/v1/redemptions", "201") == "RedemptionCreateOutput"
    assert body("POST", "/api/v1/referrals/transfer", "200") == "ReferralOutput"
    assert body("POST", "/api/v1/metering/holds/{public_id}/usage", "202") == "UsageReportOutput"
    assert body("GET", "/api/v1/wallet", "200") == "WalletOutput"
    assert body("GET", "/api/v1/referrals", "200") == "ReferralOutput"
    assert body("GET", "/api/v1/usage", "200") == "UsagePage"
    assert set(schema["components"]["schemas"]["WalletOutput"]["properties"]) >= {"balance", "held", "available"}
    # Who may call what, as declared.
    assert ops[("POST", "/api/v1/metering/holds")]["security"] == [{"gatewayKey": []}]
    assert ops[("POST", "/api/v1/topups")]["security"] == [{"cookieAuth": []}]
    assert ops[("GET", "/api/v1/key")]["security"] == [{"apiToken": []}]
    assert {"cookieAuth": []} in ops[("GET", "/api/v1/wallet")]["security"]
    assert {"apiToken": []} in ops[("GET", "/api/v1/wallet")]["security"]
    assert all("default" in op["responses"] for op in ops.values())


class Checker:
    """Validates each response against the schema; remembers which operations answered 2xx."""

    def __init__(self, client):
        self.client = client
        self.schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
        self.openapi = OpenAPI.from_dict(self.schema)  # also validates the document itself
        self.covered = set()

    def __call__(self, response, status: int, *, check_request: bool = True):
        assert response.status_code == status, (response.status_code, response.content[:300])
        request = DjangoOpenAPIRequest(response.wsgi_request)
        if check_request and status < 400:
            self.openapi.validate_request(request)
        self.openapi.validate_response(request, DjangoOpenAPIResponse(response))
        if status < 400:
            route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", response.wsgi_request.resolver_match.route)
            self.covered.add((response.wsgi_request.method, "/" + route))
        return response.json() if response.content else None

    def operations(self) -> set:
        return {(m.upper(), p) for p, item in self.schema["paths"].items() for m in item}


def test_real_responses_of_every_operation_match_the_schema(client, settings):
    world = make_world(client)
    check = Checker(client)
    sk = lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token.raw_key}"}  # noqa: E731

    # Anonymous and token calls first (the session cookie would ride along once logged in).
    check(client.get("/api/v1/pricing"), 200)
    check(client.get("/api/v1/wallet"), 401)
    check(client.get("/api/v1/key", **sk(world.plain)), 200)
    check(client.get("/api/v1/key", **sk(world.reader)), 200)
    check(client.get("/api/v1/credits", **sk(world.plain)), 200)
    check(client.get("/api/v1/wallet", **sk(world.plain)), 403)
    check(client.get("/api/v1/wallet", **sk(world.reader)), 200)
    check(client.get("/api/v1/bills", **sk(world.reader)), 200)
    check(client.get("/api/v1/referrals", **sk(world.reader)), 200)
    usage = check(client.get("/api/v1/usage", **sk(world.plain)), 200)
    assert {r["token"] for r in usage["results"]} == {"script"}
    for name, public_id in world.generations.items():
        token = world.reader if name.startswith("reader") else world.plain
        check(client.get(f"/v1/generation?id={public_id}", **sk(token)), 200)
    check(client.get("/v1/generation?id=gen-nope", **sk(world.plain)), 404)
    check(client.get("/v1/generation?id=nope", **sk(world.plain)), 400, check_request=False)
    check(client.get("/api/v1/usage?limit=0", **sk(world.plain)), 400, check_request=False)
    check(client.post("/api/v1/topups", {"amount": "5", "method": "stripe_card"}, content_type="application/json",
                      **sk(world.reader)), 403)

    # The gateway's two calls.
    check(gateway_call(client, "/api/v1/metering/holds",
                       {"token": world.plain.raw_key, "model": "gpt-4o", "input_tokens": 10, "max_output_tokens": 10},
                       world.gateway_key), 201)
    public_id = hold(client, world, world.reader)
    check(gateway_call(client, f"/api/v1/metering/holds/{public_id}/usage",
                       {"status": "succeeded", "input_tokens": 10, "output_tokens": 5}, world.gateway_key), 202)
    check(gateway_call(client, "/api/v1/metering/holds", {"model": "gpt-4o"}, world.gateway_key), 400, check_request=False)
    check(gateway_call(client, "/api/v1/metering/holds/gen-nope/usage", {"status": "failed"}, world.gateway_key), 404)

    # The console session.
    client.force_login(world.user)
    check(client.get("/api/v1/wallet"), 200)
    check(client.get("/api/v1/credits"), 200)
    check(client.get("/api/v1/bills"), 200)
    check(client.get("/api/v1/bills?status=completed"), 200)
    check(client.get("/api/v1/pricing"), 200)
    page = check(client.get("/api/v1/usage?limit=2"), 200)
    check(client.get(f"/api/v1/usage?before={page['next_before']}"), 200)
    check(client.get(f"/v1/generation?id={public_id}"), 200)
    check(client.get("/api/v1/referrals"), 200)
    check(client.post("/api/v1/referrals/transfer", {"amount": "2.50"}, content_type="application/json"), 200)
    check(client.post("/api/v1/topups", {"amount": "100", "method": "stripe_card"}, content_type="application/json"), 201)
    check(client.post("/api/v1/redemptions", {"code": world.code}, content_type="application/json"), 201)
    check(client.post("/api/v1/redemptions", {"code": "NOPE-NOPE"}, content_type="application/json"), 404)
    check(client.get("/api/v1/tokens"), 200)
    created = check(client.post("/api/v1/tokens", {"name": "ci", "quota": "3", "can_read_account": True,
                                                   "allowed_models": ["gpt-4o"], "allowed_ips": ["10.0.0.0/8"]},
                                content_type="application/json"), 201)
    check(client.patch(f"/api/v1/tokens/{created['id']}", {"quota": None, "can_read_account": False},
                       content_type="application/json"), 200)
    check(client.patch(f"/api/v1/tokens/{created['id']}", {"quota": "-1"}, content_type="application/json"), 400,
          check_request=False)
    check(client.delete(f"/api/v1/tokens/{created['id']}"), 204)
    check(client.delete(f"/api/v1/tokens/{created['id']}"), 404)
    check(client.get("/api/v1/key"), 403)
    # Invoice and refund requests, over a completed top-up of the user's.
    order = order_create(user=world.user, amount=usd("10"), method_code="stripe_card")
    order_complete(order_id=order.pk, amount_cents=1000, currency="usd")
    check(client.post("/api/v1/invoice-requests", {"company_name": "ACME", "tax_id": "X1", "orders": [order.order_no],
                                                   "delivery": "email"}, content_type="application/json"), 201)
    check(client.get("/api/v1/invoice-requests"), 200)
    check(client.post("/api/v1/refund-requests", {"order": order.order_no, "reason": "not needed"}, content_type="application/json"), 201)
    check(client.post("/api/v1/refund-requests", {"order": order.order_no, "reason": "again"}, content_type="application/json"), 409)
    check(client.get("/api/v1/refund-requests"), 200)
    # Alerts (h-alerts).
    check(client.get("/api/v1/alerts"), 200)
    check(client.post("/api/v1/alerts/test", content_type="application/json"), 400)  # no webhook yet
    alerts = check(client.patch("/api/v1/alerts", {"threshold": "2.50", "webhook_url": "https://hooks.example.com/x"},
                                content_type="application/json"), 200)
    assert alerts["webhook_secret"].startswith("whsec_")
    check(client.patch("/api/v1/alerts", {"threshold": None}, content_type="application/json"), 200)
    check(client.patch("/api/v1/alerts", {"threshold": "-1"}, content_type="application/json"), 400, check_request=False)
    check(client.post("/api/v1/alerts/test", content_type="application/json"), 202)
    check(client.get("/api/v1/alerts/deliveries"), 200)
    check(client.get("/api/v1/autotopup"), 200)
    rule = {"enabled": False, "threshold": "5", "amount": "20", "daily_cap": "100"}
    check(client.patch("/api/v1/autotopup", rule, content_type="application/json"), 200)
    check(client.patch("/api/v1/autotopup", {**rule, "enabled": True}, content_type="application/json"), 400)  # no card
    stripe = FakeStripe()  # saving a card needs Stripe: its stand-in
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = stripe.api_key, stripe.url
    try:
        check(client.post("/api/v1/autotopup/card", content_type="application/json"), 201)
    finally:
        stripe.close()

    missing = check.operations() - check.covered
    assert missing == set(), f"operations no real response was checked for: {sorted(missing)}"
