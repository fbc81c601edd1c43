"""A NUL (or a lone surrogate) anywhere in the input is a 400 `invalid_characters` that changes nothing:
in an API JSON body, a form-encoded API body, a query parameter, a path, and a console form."""

import json

import pytest

from billing.models import ApiToken, Generation
from tests.api_world import gateway_call, make_world
from wallet.models import Hold, Transaction

pytestmark = pytest.mark.django_db


def counts():
    return ApiToken.objects.count(), Generation.objects.count(), Hold.objects.count(), Transaction.objects.count()


def assert_refused(response):
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_characters")
    return error


@pytest.fixture
def world(client):
    return make_world(client)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "group": "a\x00"},  # the group went to the lookup as is: 500
        {"name": "x", "group": "default\ud800"},
        {"name": "x", "allowed_models": ["gpt-4o\x00"]},
        {"name": "x", "allowed_ips": ["10.0.0.1", "\x00"]},
        {"name": "x", "nested\x00key": 1},
        {"name": "a\x00b"},
    ],
)
def test_api_json_body(client, world, body):
    client.force_login(world.user)
    before = counts()
    error = assert_refused(client.post("/api/v1/tokens", json.dumps(body), content_type="application/json"))
    assert "U+" in error["message"] and "\x00" not in error["message"]
    assert counts() == before


def test_api_json_body_of_the_gateway_and_a_patch(client, world):
    before = counts()
    assert_refused(gateway_call(client, "/api/v1/metering/holds",
                                {"token": world.plain.raw_key, "model": "gpt-4o\x00", "input_tokens": 1}, world.gateway_key))
    assert_refused(gateway_call(client, f"/api/v1/metering/holds/{world.generations['plain_held']}/usage",
                                {"status": "failed", "error": "upstream said \x00"}, world.gateway_key))
    client.force_login(world.user)
    url = f"/api/v1/tokens/{world.plain.pk}"
    assert_refused(client.patch(url, json.dumps({"name": "n\x00"}), content_type="application/json"))
    assert_refused(client.patch(url, "name=n%00", content_type="application/x-www-form-urlencoded"))
    assert counts() == before
    assert ApiToken.objects.get(pk=world.plain.pk).name == "script"
    assert Generation.objects.get(public_id=world.generations["plain_held"]).state == "held"


def test_an_escaped_backslash_is_no_nul(client, world):
    client.force_login(world.user)
    response = client.post("/api/v1/tokens", json.dumps({"name": "back\\u0000slash"}), content_type="application/json")
    assert response.status_code == 201 and response.json()["name"] == "back\\u0000slash"


@pytest.mark.parametrize(
    "url",
    ["/v1/generation?id=gen-%00", "/api/v1/usage?model=gpt%00", "/api/v1/usage?mo%00del=x", "/api/v1/bills?status=%00"],
)
def test_query(client, world, url):
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {world.reader.raw_key}")
    assert_refused(response)


def test_path(client, world):
    before = counts()
    response = gateway_call(client, "/api/v1/metering/holds/gen-%00/usage", {"status": "failed"}, world.gateway_key)
    assert_refused(response)
    client.force_login(world.user)
    assert_refused(client.delete("/api/v1/x%00y"))
    assert counts() == before


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
@pytest.mark.parametrize("field", ["name", "group", "allowed_models", "quota"])
def test_console_form_submission(client, world, encoding, field):
    client.force_login(world.user)
    data = {"name": "console", "group": "default", "unlimited": "on", "quota": "", "allowed_ips": ""}
    data[field] = (data.get(field) or "gpt-4o") + "\x00"
    before = counts()
    if encoding == "multipart":
        response = client.post("/tokens/", data)
    else:
        from urllib.parse import urlencode

        response = client.post("/tokens/", urlencode(data), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "not allowed" in response.content.decode() and response["Content-Type"].startswith("text/html")
    assert counts() == before


def test_console_query(client, world):
    client.force_login(world.user)
    response = client.get("/usage/?model=%00")
    assert response.status_code == 400 and b"not allowed" in response.content


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded", "json"])
def test_clean_bodies_still_reach_the_api_after_the_middleware_read_them(client, world, encoding):
    """The middleware parses form bodies before DRF does; DRF must still see them."""
    from urllib.parse import urlencode

    client.force_login(world.user)
    data = {"name": f"via {encoding} 中文", "quota": "2.50"}
    if encoding == "multipart":
        response = client.post("/api/v1/tokens", data)
    elif encoding == "urlencoded":
        response = client.post("/api/v1/tokens", urlencode(data), content_type="application/x-www-form-urlencoded")
    else:  # non-ASCII escaped as \u: the walk runs and finds nothing
        response = client.post("/api/v1/tokens", json.dumps(data), content_type="application/json")
    assert response.status_code == 201, response.content
    assert (response.json()["name"], response.json()["quota"]) == (data["name"], "2.50")
