"""Many streams at once through the relay, settled by a real Celery worker on real PostgreSQL: every
generation settles exactly once, each balance falls by exactly the sum of the upstream-reported costs,
nothing stays held, and check_ledger is clean (checked after every test)."""

from __future__ import annotations

import asyncio
import time

import pytest

from billing.models import Channel, Generation
from billing.relay.upstream import run_sync
from billing.services.metering.pricing import Usage, charge
from tests.fakes.upstream import PROMPT_TOKENS
from tests.relay.conftest import main_account, relay_refresh, user_with_token

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = 20


async def _streams(relay, keys: list[str], *, concurrency: int) -> list[str]:
    """Run one streaming chat per key, at most `concurrency` at once; the gen- ids (each stream read to its end)."""
    clients = {key: relay.async_client(key) for key in set(keys)}
    gate = asyncio.Semaphore(concurrency)

    async def one(key: str) -> str:
        async with gate:
            stream = await clients[key].chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == WORDS
            return chunks[0].id

    try:
        return list(await asyncio.gather(*(one(key) for key in keys)))
    finally:
        for client in clients.values():
            await client.close()


def _wait_settled(ids: list[str], timeout: float = 180) -> list[Generation]:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if not Generation.objects.filter(public_id__in=ids).exclude(state="settled").exists():
            break
        time.sleep(0.25)
    return list(Generation.objects.filter(public_id__in=ids))


def _check(users_and_before: list, generations: list[Generation], n: int) -> None:
    assert len(generations) == n and len({g.public_id for g in generations}) == n
    assert {g.state for g in generations} == {"settled"}
    by_user: dict[int, int] = {}
    for g in generations:
        expected = charge(g.price_snapshot, Usage(input_tokens=PROMPT_TOKENS, output_tokens=WORDS), g.rate)
        assert (g.final_cost, g.charge_basis) == (expected, "reported")
        by_user[g.user_id] = by_user.get(g.user_id, 0) + expected
    for user, before in users_and_before:
        account = main_account(user)
        assert account.held == 0
        assert account.balance == before - by_user.get(user.pk, 0)


@pytest.fixture
def patient_primary(relay):
    """Hundreds of streams at once on two shared cores can keep the fake upstream's first byte past the
    usual 5 s read timeout: give the primary 30 s, so only a real upstream error would reach the backup."""
    Channel.objects.filter(name="primary").update(read_timeout=30)
    relay_refresh()
    return relay


def test_200_concurrent_streams_on_one_hot_account(patient_primary, upstreams, celery_worker):
    relay = patient_primary
    upstreams.a.reset(words=WORDS, chunk_delay=0.002)
    user, _, key = user_with_token("100")
    before = main_account(user).balance
    ids = run_sync(_streams(relay, [key] * 200, concurrency=200))
    _check([(user, before)], _wait_settled(ids), 200)
    assert upstreams.b.requests == [], "no request needed the backup channel"


def test_1000_streams_across_100_accounts(patient_primary, upstreams, celery_worker):
    relay = patient_primary
    upstreams.a.reset(words=WORDS)
    upstreams.b.reset(words=WORDS)
    people = [user_with_token("20") for _ in range(100)]
    befores = [(user, main_account(user).balance) for user, _, _ in people]
    keys = [key for _, _, key in people] * 10
    ids = run_sync(_streams(relay, keys, concurrency=200))
    _check(befores, _wait_settled(ids), 1000)
    assert upstreams.b.requests == [], "no request needed the backup channel"


def test_clients_leaving_mid_stream_under_load_never_leave_a_hold_open(relay, upstreams):
    """300 streams at once, every 7th client leaving after a few lines: each is reported (the report of a
    request whose client left is never cancelled while it waits for a database thread) and settles."""
    import httpx

    from tests.relay.conftest import settle_all

    upstreams.a.reset(words=WORDS)
    upstreams.a.record = False
    people = [user_with_token("100") for _ in range(5)]

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=400)) as client:

            async def one(i: int) -> None:
                async with client.stream("POST", relay.base + "/chat/completions", headers={"Authorization": f"Bearer {people[i % 5][2]}"},
                                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}) as r:
                    lines = 0
                    async for _ in r.aiter_lines():
                        lines += 1
                        if i % 7 == 0 and lines > 3:
                            return  # this client goes away

            await asyncio.gather(*(one(i) for i in range(300)))

    run_sync(run())
    until = time.monotonic() + 30
    while Generation.objects.filter(state="held").exists() and time.monotonic() < until:
        time.sleep(0.1)
    assert not Generation.objects.filter(state="held").exists(), "a hold was left open"
    settle_all()
    assert set(Generation.objects.values_list("state", flat=True)) == {"settled"}
    assert Generation.objects.count() == 300
    for user, _, _ in people:
        assert main_account(user).held == 0
