"""The invite transfer form goes back only to a page of this site."""

import pytest

from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [
        ("/wallet/", "/wallet/"),
        ("/invite/?tab=rewards", "/invite/?tab=rewards"),
        ("", "/invite/"),
        ("https://evil.example/phish", "/invite/"),
        ("//evil.example/phish", "/invite/"),
        ("/\\evil.example", "/invite/"),
        ("\\\\evil.example", "/invite/"),
        ("http:/evil.example", "/invite/"),
        ("javascript:alert(1)", "/invite/"),
        ("https://testserver/wallet/", "/invite/"),  # absolute, even to ourselves: only paths
    ],
)
def test_transfer_redirects_only_to_local_paths(client, next_url, lands_on):
    client.force_login(make_user())
    response = client.post("/invite/transfer/", {"amount": "1", "next": next_url})
    # ...at the transfer form, where its message is shown
    assert response.status_code == 302 and response["Location"] == lands_on + "#transfer"
