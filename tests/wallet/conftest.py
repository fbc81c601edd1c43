import pytest

from tests.fakes.providers import FakeAirwallex, FakeStripe
from wallet.demo import topup_config_load


@pytest.fixture
def topup_config(db):
    topup_config_load()


@pytest.fixture
def fake_stripe(settings, topup_config):
    fake = FakeStripe()
    settings.STRIPE_SECRET_KEY = fake.api_key
    settings.STRIPE_WEBHOOK_SECRET = fake.webhook_secret
    settings.STRIPE_API_BASE = fake.url
    yield fake
    fake.close()


@pytest.fixture
def fake_airwallex(settings, topup_config):
    fake = FakeAirwallex()
    settings.AIRWALLEX_CLIENT_ID = fake.client_id
    settings.AIRWALLEX_API_KEY = fake.api_key
    settings.AIRWALLEX_WEBHOOK_SECRET = fake.webhook_secret
    settings.AIRWALLEX_API_BASE = fake.url
    yield fake
    fake.close()
