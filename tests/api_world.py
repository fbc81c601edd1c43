"""An account with something behind every API endpoint: a balance, bills, referral proceeds, a redemption
code, a gateway, two API tokens (plain and account-read) and generations in several states."""

import csv
import io
import json
from dataclasses import dataclass

from billing.demo import catalog_load
from billing.models import ApiToken, Generation
from billing.services.metering import generation_settle
from billing.services.tokens import gateway_key_create, token_create
from referrals.demo import reward_rule_load
from referrals.services import invite_code_for, referral_record
from synstar.money import usd
from tests.factories import make_user
from wallet.demo import topup_config_load
from wallet.services.redemptions import batch_generate
from wallet.services.topups import order_complete, order_create


@dataclass
class World:
    user: object
    plain: ApiToken  # .raw_key set: inference only
    reader: ApiToken  # .raw_key set: can_read_account
    other_user_token: ApiToken
    gateway_key: str
    code: str
    generations: dict  # name -> public id: "plain_held", "plain_settled", "reader_held"


def _top_up(user, dollars: str):
    order = order_create(user=user, amount=usd(dollars), method_code="stripe_card")  # the sandbox takes it
    return order_complete(order_id=order.pk, amount_cents=int(usd(dollars) // 10_000_000), currency="usd")


def _token(user, name: str, **kwargs) -> ApiToken:
    token, raw = token_create(user=user, name=name, **kwargs)
    token.raw_key = raw
    return token


def gateway_call(client, url: str, body: dict, key: str):
    return client.post(url, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def hold(client, world: "World", token: ApiToken) -> str:
    response = gateway_call(
        client, "/api/v1/metering/holds",
        {"token": token.raw_key, "model": "gpt-4o", "input_tokens": 1000, "max_output_tokens": 500}, world.gateway_key,
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def make_world(client) -> World:
    catalog_load()
    topup_config_load()
    reward_rule_load()
    user = make_user(balance="20")
    invitee = make_user()
    referral_record(invitee=invitee, code=invite_code_for(user=user).code)
    _top_up(invitee, "100")  # the user earns $11 of proceeds
    _top_up(user, "5")  # and has a completed bill
    admin = make_user(is_staff=True)
    _, text = batch_generate(campaign="launch", value=usd("2"), count=1, created_by=admin)
    code = next(csv.DictReader(io.StringIO(text)))["code"]
    _, gateway_key = gateway_key_create(name="edge-world")
    world = World(
        user=user,
        plain=_token(user, "script", quota=usd("1")),
        reader=_token(user, "dashboard", can_read_account=True),
        other_user_token=_token(make_user(), "stranger"),
        gateway_key=gateway_key,
        code=code,
        generations={},
    )
    world.generations["plain_held"] = hold(client, world, world.plain)
    settled = hold(client, world, world.plain)
    report = gateway_call(
        client, f"/api/v1/metering/holds/{settled}/usage",
        {"status": "succeeded", "input_tokens": 1000, "output_tokens": 100}, world.gateway_key,
    )
    assert report.status_code == 202, report.content
    generation_settle(generation_id=Generation.objects.get(public_id=settled).pk)
    world.generations["plain_settled"] = settled
    world.generations["reader_held"] = hold(client, world, world.reader)
    return world
