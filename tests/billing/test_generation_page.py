"""Usage rows link to the request's detail page (the generation lookup as a console page); a user sees
only their own; unit-billed requests show their units; expired requests say released, not frozen."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services.metering import generations_settle_batch, metering_hold, metering_report, metering_sweep
from billing.services.metering.pricing import Usage
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _hold(gateway, token, **kwargs):
    params = {"model_name": "gpt-4o", "endpoint": "/v1/chat/completions", "input_tokens": 1000, "max_output_tokens": 500}
    params.update(kwargs)
    return metering_hold(gateway=gateway, token_key=token.raw_key, **params)


def test_usage_row_links_to_its_detail_page(client, gateway, make_token):
    user = make_user(balance="5")
    token = make_token(user, name="backend")
    g = _hold(gateway, token)
    metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(input_tokens=1000, output_tokens=100))
    generations_settle_batch()
    client.force_login(user)
    usage = client.get("/usage/").content.decode()
    links = re.findall(r'href="(/usage/gen-[^"]+/)"', usage)
    assert links == [f"/usage/{g.public_id}/"]
    page = client.get(links[0])
    body = page.content.decode()
    assert page.status_code == 200
    assert g.public_id in body and "gpt-4o" in body and "backend" in body
    assert "$0.0035" in body  # 1,000 in + 100 out at $2.50 / $10 per M
    assert "Settled" in body


def test_another_users_generation_is_404(client, gateway, make_token):
    owner, stranger = make_user(balance="5"), make_user(balance="5")
    g = _hold(gateway, make_token(owner))
    client.force_login(stranger)
    assert client.get(f"/usage/{g.public_id}/").status_code == 404
    assert client.get("/usage/gen-doesnotexist/").status_code == 404
    client.force_login(owner)
    assert client.get(f"/usage/{g.public_id}/").status_code == 200
    client.logout()
    assert client.get(f"/usage/{g.public_id}/").status_code == 302  # to the sign-in page


def test_unit_billed_requests_show_their_units(client, gateway, make_token):
    user = make_user(balance="5")
    token = make_token(user)
    g = _hold(gateway, token, model_name="dall-e-3", input_tokens=0, max_output_tokens=None, units=Decimal(4))
    client.force_login(user)
    pending = client.get("/usage/").content.decode()
    assert "4 images" in pending and "estimate" in pending
    metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(units=Decimal(1)))
    generations_settle_batch()
    settled = client.get("/usage/").content.decode()
    assert "1 image<" in settled
    assert "1 image" in client.get(f"/usage/{g.public_id}/").content.decode()


def test_expired_requests_say_released_not_frozen(client, gateway, make_token):
    user = make_user(balance="5")
    g = _hold(gateway, make_token(user))
    metering_sweep(now=timezone.now() + timedelta(hours=2))
    client.force_login(user)
    row = re.search(rf"<tr>(?:(?!</tr>).)*{g.public_id}(?:(?!</tr>).)*</tr>", client.get("/usage/").content.decode(), re.S).group(0)
    assert "released" in row.lower() and "frozen" not in row.lower()
    detail = client.get(f"/usage/{g.public_id}/").content.decode()
    assert "Released" in detail and "nothing was charged" in detail
