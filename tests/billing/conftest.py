import pytest

from billing.demo import catalog_load
from billing.models import TokenGroup
from billing.services.tokens import gateway_key_create, token_create


@pytest.fixture
def catalog(db):
    catalog_load()


@pytest.fixture
def gateway(catalog):
    gateway, raw = gateway_key_create(name="edge-test")
    gateway.raw_key = raw
    return gateway


@pytest.fixture
def make_token(catalog):
    def make(user, *, group: str = "default", quota=None, **kwargs):
        token, raw = token_create(
            user=user, name=kwargs.pop("name", "test"), group=TokenGroup.objects.get(name=group), quota=quota, **kwargs
        )
        token.raw_key = raw
        return token

    return make
