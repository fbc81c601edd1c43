"""The relay under test: the real ASGI app (synstar.asgi) served by uvicorn on a local port, two fake
OpenAI-compatible upstreams, and users with tokens. Clients are the official `openai` SDK."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai
import pytest

from billing.demo import catalog_load
from billing.models import Channel, ChannelModel, Generation, ModelPrice, TokenGroup
from billing.relay import app as relay_app
from billing.relay.gateway import relay_gateway_forget
from billing.services.metering import generations_settle_batch
from billing.services.tokens import token_create
from tests.factories import make_user
from tests.fakes.upstream import FakeUpstream, ServerThread
from wallet.models import Account

UPSTREAM_KEY_A = "upstream-secret-key-a"
UPSTREAM_KEY_B = "upstream-secret-key-b"


@dataclass
class Upstreams:
    a: FakeUpstream
    b: FakeUpstream
    url_a: str
    url_b: str


@pytest.fixture
def upstreams():
    a, b = FakeUpstream(), FakeUpstream()
    server_a, server_b = ServerThread(a).start(), ServerThread(b).start()
    yield Upstreams(a, b, server_a.url + "/v1", server_b.url + "/v1")
    server_a.stop()
    server_b.stop()


def channel_make(name: str, url: str, key: str, *, priority: int = 0, models=None, **fields) -> Channel:
    channel = Channel.objects.create(name=name, base_url=url, api_key=key, priority=priority, **fields)
    for model in models if models is not None else ModelPrice.objects.all():
        ChannelModel.objects.create(channel=channel, model=model)
    return channel


def relay_refresh() -> None:
    """Channels changed in the test: make the relay read them now (in production within RELAY_CHANNEL_REFRESH_SECONDS)."""
    relay_app.snapshot_forget()


@dataclass
class Relay:
    url: str

    @property
    def base(self) -> str:
        return self.url + "/v1"

    def client(self, key: str, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=30, **kwargs)

    def async_client(self, key: str, **kwargs) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=60, **kwargs)

    def get(self, path: str, key: str, **params) -> httpx.Response:
        return httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def relay_server(transactional_db):
    """The whole ASGI application (relay in front of Django) on a local port."""
    catalog_load()
    relay_gateway_forget()
    relay_app.snapshot_forget()
    from synstar.asgi import application

    server = ServerThread(application, keep_alive=75).start()  # as `make run` serves it
    yield Relay(server.url)
    server.stop()
    relay_gateway_forget()
    relay_app.snapshot_forget()


@pytest.fixture
def relay(relay_server, upstreams):
    """The relay with two channels: `primary` (upstream a, priority 10) and `backup` (upstream b)."""
    channel_make("primary", upstreams.url_a, UPSTREAM_KEY_A, priority=10, read_timeout=5)
    channel_make("backup", upstreams.url_b, UPSTREAM_KEY_B, priority=0, read_timeout=5)
    relay_refresh()
    return relay_server


def user_with_token(balance: str = "10", *, group: str = "default", **token_fields):
    user = make_user(balance=balance)
    token, raw = token_create(user=user, name="relay test", group=TokenGroup.objects.get(name=group), **token_fields)
    return user, token, raw


def main_account(user) -> Account:
    return Account.objects.get(user=user, kind=Account.Kind.MAIN)


def settle_all() -> int:
    return generations_settle_batch()


def generation(public_id: str) -> Generation:
    return Generation.objects.select_related("model").get(public_id=public_id)


def wait_reported(public_id: str, timeout: float = 10) -> Generation:
    """A stream's report lands just after its last byte (or its client going away): wait for it."""
    import time

    until = time.monotonic() + timeout
    while True:
        gen = generation(public_id)
        if gen.state != "held" or time.monotonic() > until:
            return gen
        time.sleep(0.02)
