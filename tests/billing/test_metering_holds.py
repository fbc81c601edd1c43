"""How a hold is sized: a priced upper bound, never $0; what cannot be priced is refused; usage above the
hold is charged and marked over the estimate. Every scenario runs through both metering implementations."""

import json
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing.models import ApiToken, Generation, ModelPrice, TokenGroup
from billing.services.metering import generation_settle, metering_hold, metering_report
from billing.services.metering.pricing import Usage, charge
from synstar.errors import InsufficientBalance, InvalidRequest
from synstar.money import usd
from tests.factories import fund, make_user
from wallet.models import Hold, Transaction
from wallet.selectors.ledger import wallet_statistics

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["postgresql-sql", "portable-orm"])
def implementation(request, monkeypatch):
    import billing.services.metering

    monkeypatch.setattr(billing.services.metering, "FORCE_PORTABLE", request.param == "portable-orm")
    return request.param


@pytest.fixture
def empty_user(settings):
    """An account with nothing on it (no signup grant)."""
    settings.SIGNUP_GRANT_USD = "0"
    return make_user()


def hold(gateway, token, model="gpt-4o", **kwargs):
    return metering_hold(gateway=gateway, token_key=token.raw_key, model_name=model, endpoint="/v1/x", **kwargs)


def snapshot(user, token):
    """Everything a refused hold must leave as it was."""
    s = wallet_statistics(user=user)
    t = ApiToken.objects.get(pk=token.pk)
    return (Generation.objects.count(), Hold.objects.count(), Transaction.objects.count(), s.balance, s.held, t.held)


# --- what cannot be priced is refused, whatever the balance ---------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "code"),
    [
        ("gpt-4o", {}, "input_tokens_required"),  # per token, no counts at all (the $0 hold of the issue)
        ("gpt-4o", {"input_tokens": 0, "max_output_tokens": 500}, "input_tokens_required"),
        ("text-embedding-3-small", {}, "input_tokens_required"),
        ("dall-e-3", {}, "units_required"),  # per unit, no units
        ("veo-3", {"units": Decimal(0), "input_tokens": 100}, "units_required"),
    ],
)
@pytest.mark.parametrize("funded", [False, True])
def test_a_hold_that_cannot_be_priced_is_refused_and_changes_nothing(gateway, make_token, empty_user, model, kwargs, code, funded):
    if funded:
        fund(empty_user, "100")
    token = make_token(empty_user)
    before = snapshot(empty_user, token)
    with pytest.raises(InvalidRequest) as info:
        hold(gateway, token, model=model, **kwargs)
    assert (info.value.status, info.value.code) == (400, code)
    assert snapshot(empty_user, token) == before


def test_the_issue_scenario_no_counts_on_an_empty_account_never_reaches_debt(gateway, make_token, empty_user):
    """Was: held at $0.00, settled at $1.25, account in debt."""
    token = make_token(empty_user)
    with pytest.raises(InvalidRequest):
        hold(gateway, token)
    with pytest.raises(InsufficientBalance):  # with counts it is priced, and the empty account cannot pay
        hold(gateway, token, input_tokens=100_000, max_output_tokens=100_000)
    assert wallet_statistics(user=empty_user).balance == 0


def test_per_request_model_freezes_its_price_and_a_free_one_the_minimum(gateway, make_token, empty_user, settings):
    settings.METERING_MIN_HOLD_USD = "0.01"
    ModelPrice.objects.filter(name="rerank-v3.5").update(request_price=0)  # priced at nothing in the catalog
    token = make_token(empty_user)
    before = snapshot(empty_user, token)
    with pytest.raises(InsufficientBalance):  # was: accepted at $0.00 on the empty account
        hold(gateway, token, model="rerank-v3.5")
    assert snapshot(empty_user, token) == before
    fund(empty_user, "1")
    assert hold(gateway, token, model="rerank-v3.5").estimated_cost == usd("0.01")
    assert hold(gateway, token, model="suno-v4").estimated_cost == usd("0.10")  # its price, nothing sent


def test_a_zero_priced_per_token_model_still_freezes_the_minimum(gateway, make_token, empty_user, settings):
    settings.METERING_MIN_HOLD_USD = "0.02"
    ModelPrice.objects.filter(name="gpt-4o-mini").update(input_per_million=0, output_per_million=0, cached_input_per_million=0)
    token = make_token(empty_user)
    with pytest.raises(InsufficientBalance):
        hold(gateway, token, model="gpt-4o-mini", input_tokens=10)
    fund(empty_user, "1")
    generation = hold(gateway, token, model="gpt-4o-mini", input_tokens=10)
    assert generation.estimated_cost == usd("0.02")
    metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded",
                    usage=Usage(input_tokens=10, output_tokens=10))
    settled = generation_settle(generation_id=generation.pk)
    assert (settled.final_cost, settled.over_estimate) == (0, False)
    assert wallet_statistics(user=empty_user).held == 0


# --- default maximum output -----------------------------------------------------------------------


@pytest.mark.parametrize("sent", [{}, {"max_output_tokens": None}, {"max_output_tokens": 0}])
def test_no_max_output_holds_for_the_models_default_maximum_output(gateway, make_token, sent):
    user = make_user(balance="9.50")
    token = make_token(user, quota=usd("5"))
    assert ModelPrice.objects.get(name="gpt-4o").default_max_output_tokens == 16_384  # the demo catalog's
    generation = hold(gateway, token, input_tokens=1000, **sent)
    # 1,000 x $2.50/M + 16,384 x $10/M = 0.0025 + 0.16384
    assert generation.estimated_cost == usd("0.16634")
    assert Generation.objects.get(pk=generation.pk).est_output_tokens == 16_384
    assert wallet_statistics(user=user).held == usd("0.16634")
    assert ApiToken.objects.get(pk=token.pk).held == usd("0.16634")


def test_the_default_is_read_from_the_catalog_and_a_sent_maximum_wins(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    ModelPrice.objects.filter(name="gpt-4o").update(default_max_output_tokens=1000)
    assert hold(gateway, token, input_tokens=1000).estimated_cost == usd("0.0125")
    assert hold(gateway, token, input_tokens=1000, max_output_tokens=50_000).estimated_cost == usd("0.5025")


def test_a_new_model_gets_a_sensible_default_maximum_output(catalog):
    model = ModelPrice.objects.create(name="new-chat", category="chat", billing_type="per_token")
    assert model.default_max_output_tokens == 4096


def test_admin_shows_and_edits_the_default_maximum_output(client, catalog, admin_user):
    from django.urls import reverse

    client.force_login(admin_user)
    model = ModelPrice.objects.get(name="gpt-4o")
    assert "16,384" in client.get(reverse("admin:billing_modelprice_changelist")).content.decode()
    url = reverse("admin:billing_modelprice_change", args=[model.pk])
    form = client.get(url).context["adminform"].form
    # What the browser sends back: each field as the form renders it (prices as dollars).
    rendered = {name: form[name].value() for name in form.fields}
    data = {name: ("" if value is None else value) for name, value in rendered.items()}
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(url, {**data, "default_max_output_tokens": "32000"})
    assert response.status_code == 302
    saved = ModelPrice.objects.get(pk=model.pk)
    assert saved.default_max_output_tokens == 32_000
    assert (saved.input_per_million, saved.output_per_million) == (model.input_per_million, model.output_per_million)
    data["default_max_output_tokens"] = "0"
    assert client.post(url, data).status_code == 200  # refused by the form: at least 1
    assert ModelPrice.objects.get(pk=model.pk).default_max_output_tokens == 32_000


def test_success_without_usage_is_charged_the_default_maximum_output(gateway, make_token):
    user = make_user(balance="9.50")
    generation = hold(gateway, make_token(user), input_tokens=1000)
    metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded")
    settled = generation_settle(generation_id=generation.pk)
    assert (settled.final_cost, settled.charge_basis, settled.over_estimate) == (usd("0.16634"), "estimate", False)


# --- minimum hold ---------------------------------------------------------------------------------


def test_minimum_hold_applies_and_settlement_charges_the_real_cost(gateway, make_token, settings):
    settings.METERING_MIN_HOLD_USD = "0.05"
    user = make_user(balance="9.50")
    token = make_token(user, quota=usd("5"))
    small = hold(gateway, token, input_tokens=10, max_output_tokens=10)  # priced at $0.000125
    assert small.estimated_cost == usd("0.05")
    assert (wallet_statistics(user=user).held, ApiToken.objects.get(pk=token.pk).held) == (usd("0.05"), usd("0.05"))
    big = hold(gateway, token, input_tokens=1000, max_output_tokens=500)
    assert big.estimated_cost == usd("0.05")  # $0.0075 < the minimum
    assert hold(gateway, token, input_tokens=1000, max_output_tokens=10_000).estimated_cost == usd("0.1025")  # above it
    metering_report(gateway=gateway, public_id=small.public_id, outcome="succeeded", usage=Usage(input_tokens=10, output_tokens=10))
    settled = generation_settle(generation_id=small.pk)
    assert (settled.final_cost, settled.over_estimate) == (usd("0.000125"), False)
    assert wallet_statistics(user=user).held == usd("0.05") + usd("0.1025")


def test_minimum_hold_refuses_an_account_below_it(gateway, make_token, empty_user, settings):
    settings.METERING_MIN_HOLD_USD = "0.05"
    fund(empty_user, "0.04")
    token = make_token(empty_user)
    with pytest.raises(InsufficientBalance):
        hold(gateway, token, input_tokens=10, max_output_tokens=10)
    settings.METERING_MIN_HOLD_USD = "0"
    assert hold(gateway, token, input_tokens=10, max_output_tokens=10).estimated_cost == usd("0.000125")


def test_the_default_minimum_hold_is_set(gateway, make_token):
    from django.conf import settings

    assert Decimal(settings.METERING_MIN_HOLD_USD) > 0
    user = make_user(balance="9.50")
    generation = hold(gateway, make_token(user), model="text-embedding-3-small", input_tokens=1)
    assert generation.estimated_cost == usd(settings.METERING_MIN_HOLD_USD)


# --- usage above the hold: charged, and marked ----------------------------------------------------


def test_usage_above_the_hold_is_charged_and_marked_over_estimate(gateway, make_token):
    user = make_user()  # $0.50
    token = make_token(user)
    generation = hold(gateway, token, input_tokens=100, max_output_tokens=1000)  # $0.01025
    reported = metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded",
                               usage=Usage(input_tokens=100, output_tokens=80_000))
    assert reported.over_estimate is True
    assert Generation.objects.get(pk=generation.pk).over_estimate is True  # stored with the report
    settled = generation_settle(generation_id=generation.pk)
    assert (settled.final_cost, settled.over_estimate, settled.charge_basis) == (usd("0.80025"), True, "reported")
    assert wallet_statistics(user=user).balance == usd("0.50") - usd("0.80025")  # the user consumed it


def test_usage_page_and_csv_say_which_requests_went_above_the_estimate(gateway, make_token, client):
    user = make_user()
    generation = hold(gateway, make_token(user), input_tokens=100, max_output_tokens=1000)
    metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded",
                    usage=Usage(input_tokens=100, output_tokens=80_000))
    generation_settle(generation_id=generation.pk)
    client.force_login(user)
    assert "above the estimate" in client.get("/usage/").content.decode()
    rows = b"".join(client.get("/usage/?format=csv").streaming_content).decode().splitlines()
    assert rows[0].endswith(",over_estimate") and rows[1].endswith(",yes")


def test_usage_within_the_hold_is_not_marked(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    exact = hold(gateway, token, input_tokens=1000, max_output_tokens=500)
    assert metering_report(gateway=gateway, public_id=exact.public_id, outcome="succeeded",
                           usage=Usage(input_tokens=1000, output_tokens=500)).over_estimate is False
    failed = hold(gateway, token, input_tokens=1000, max_output_tokens=500)
    assert metering_report(gateway=gateway, public_id=failed.public_id, outcome="failed",
                           usage=Usage(input_tokens=1000, output_tokens=90_000)).over_estimate is False  # not charged
    for g in (exact, failed):
        generation_settle(generation_id=g.pk)
    assert list(Generation.objects.values_list("over_estimate", flat=True)) == [False, False]


def test_a_repeated_report_answers_the_stored_flag(gateway, make_token):
    user = make_user(balance="9.50")
    generation = hold(gateway, make_token(user), input_tokens=10, max_output_tokens=10)
    usage = Usage(input_tokens=10, output_tokens=10_000)
    assert metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded", usage=usage).over_estimate
    again = metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded", usage=Usage())
    assert (again.state, again.over_estimate) == ("reported", True)


# --- over HTTP: the error shape, the 202 answer, the lookup ---------------------------------------


def post(client, url, body, key):
    return client.post(url, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "gpt-4o"}, "input_tokens_required"),
        ({"model": "gpt-4o", "input_tokens": 0, "max_output_tokens": 100}, "input_tokens_required"),
        ({"model": "dall-e-3"}, "units_required"),
        ({"model": "whisper-1", "units": "0"}, "units_required"),
    ],
)
def test_unpriceable_hold_over_http_is_a_400_in_our_shape(client, gateway, make_token, empty_user, body, code):
    token = make_token(empty_user)
    before = snapshot(empty_user, token)
    response = post(client, "/api/v1/metering/holds", {"token": token.raw_key, **body}, gateway.raw_key)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code) and error["message"]
    assert snapshot(empty_user, token) == before


def test_over_estimate_in_the_202_answer_and_the_lookup(client, gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    created = post(client, "/api/v1/metering/holds", {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 100},
                   gateway.raw_key).json()
    assert (created["estimated_cost"], created["max_output_tokens"]) == ("0.16409", 16_384)  # the default was used
    within = post(client, "/api/v1/metering/holds", {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 100,
                                                     "max_output_tokens": 100}, gateway.raw_key).json()
    over = post(client, f"/api/v1/metering/holds/{created['id']}/usage",
                {"status": "succeeded", "input_tokens": 100, "output_tokens": 200_000}, gateway.raw_key)
    assert over.status_code == 202
    assert over.json() == {"id": created["id"], "state": "reported", "over_estimate": True}
    fine = post(client, f"/api/v1/metering/holds/{within['id']}/usage",
                {"status": "succeeded", "input_tokens": 90, "output_tokens": 100}, gateway.raw_key)
    assert (fine.status_code, fine.json()["over_estimate"]) == (202, False)

    auth = {"HTTP_AUTHORIZATION": f"Bearer {token.raw_key}"}
    lookup = client.get(f"/v1/generation?id={created['id']}", **auth).json()
    assert (lookup["state"], lookup["over_estimate"]) == ("reported", True)
    assert lookup["estimate"]["max_output_tokens"] == 16_384
    for public_id in (created["id"], within["id"]):
        generation_settle(generation_id=Generation.objects.get(public_id=public_id).pk)
    lookup = client.get(f"/v1/generation?id={created['id']}", **auth).json()
    assert (lookup["state"], lookup["final_cost"], lookup["over_estimate"]) == ("settled", "2.00025", True)
    assert client.get(f"/v1/generation?id={within['id']}", **auth).json()["over_estimate"] is False
    rows = {r["id"]: r["over_estimate"] for r in client.get("/api/v1/usage", **auth).json()["results"]}
    assert rows == {created["id"]: True, within["id"]: False}


# --- property: the hold is a real upper bound -----------------------------------------------------

PRICE = st.integers(0, 200 * 10**9)  # up to $200 per million tokens


@st.composite
def requests(draw):
    """A catalog price for the model and a request for it, with a usage within what the request allows."""
    kind = draw(st.sampled_from(["per_token", "per_unit", "per_request"]))
    threshold = draw(st.none() | st.integers(1, 300_000))
    price = {
        "billing_type": kind,
        "input_per_million": draw(PRICE),
        "output_per_million": draw(PRICE),
        "cached_input_per_million": draw(st.none() | PRICE),
        "long_context_threshold": threshold,
        "long_input_per_million": draw(st.none() | PRICE) if threshold else None,
        "long_output_per_million": draw(st.none() | PRICE) if threshold else None,
        "long_cached_input_per_million": draw(st.none() | PRICE) if threshold else None,
        "request_price": draw(st.integers(0, 10 * 10**9)),
        "unit": "image",
        "unit_price": draw(st.integers(0, 10**9)),
        "minimum_charge": draw(st.integers(0, 10**8)),
        "default_max_output_tokens": draw(st.integers(1, 200_000)),
    }
    request = {
        "input_tokens": draw(st.integers(1, 1_000_000)),
        "max_output_tokens": draw(st.none() | st.integers(0, 200_000)),
        "units": draw(st.decimals(min_value=Decimal("0.000001"), max_value=1000, places=6)),
    }
    return price, request, draw(st.sampled_from(["default", "discount"])), draw(st.randoms(use_true_random=False))


@given(case=requests())
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_property_the_hold_covers_the_priced_upper_bound_and_any_usage_within_it(gateway, make_token, case):
    price, request, group, rnd = case
    user = make_user(balance="100000")
    TokenGroup.objects.get(name="discount").allowed_users.add(user)
    token = make_token(user, group=group)
    ModelPrice.objects.filter(name="gpt-4o").update(**price)
    generation = hold(gateway, token, **request)
    max_output = request["max_output_tokens"] or price["default_max_output_tokens"]
    if price["billing_type"] == "per_token":
        upper = Usage(input_tokens=request["input_tokens"], output_tokens=max_output)
        inp = rnd.randint(0, request["input_tokens"])
        actual = Usage(input_tokens=inp, output_tokens=rnd.randint(0, max_output), cached_tokens=rnd.randint(0, inp))
    elif price["billing_type"] == "per_unit":
        upper = Usage(units=request["units"])
        actual = Usage(units=(request["units"] * rnd.randint(0, 1000) / 1000).quantize(Decimal("0.000001"), ROUND_DOWN))
    else:
        upper = actual = Usage()
    rate = Decimal("0.3") if group == "discount" else Decimal(1)
    from django.conf import settings

    minimum = usd(settings.METERING_MIN_HOLD_USD)
    assert generation.estimated_cost >= max(charge(price, upper, rate), minimum)
    assert wallet_statistics(user=user).held == generation.estimated_cost

    reported = metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded", usage=actual)
    settled = generation_settle(generation_id=generation.pk)
    assert reported.over_estimate is False and settled.over_estimate is False
    assert settled.final_cost == charge(price, actual, rate) <= generation.estimated_cost
    assert wallet_statistics(user=user).held == 0
