import pytest
from django.urls import reverse

from synstar.money import usd
from tests.factories import make_user
from tests.metering import meter_hold, meter_settle
from wallet.services.ledger import main_account

pytestmark = pytest.mark.django_db


def test_wallet_api_requires_authentication_in_the_error_shape(client):
    response = client.get("/api/v1/wallet")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "type": "authentication_error",
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
        }
    }


def test_wallet_api_returns_statistics_as_decimal_strings(client):
    user = make_user(balance="10")
    main_account(user=user)
    meter_settle(meter_hold(user, usd("1")), usd("0.123456789"))
    meter_hold(user, usd("2"))
    client.force_login(user)
    assert client.get("/api/v1/wallet").json() == {
        "currency": "USD",
        "balance": "10.376543211",
        "held": "2.00",
        "available": "8.376543211",
        "consumption": "0.123456789",
        "request_count": 1,
        "in_debt": False,
        "debt": "0.00",
    }


def test_unknown_api_path_is_a_404_in_the_error_shape(client):
    response = client.get("/api/v1/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_method_not_allowed_in_the_error_shape(client):
    client.force_login(make_user())
    response = client.post("/api/v1/wallet")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/wallet" in schema.json()["paths"]
    assert client.get(reverse("api-docs")).status_code == 200
