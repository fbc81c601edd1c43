"""Chat completions through the relay with the official SDK: the answer carries the gen- id and the cost,
the upstream gets our channel's key and its own model name, and settlement charges exactly that cost."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from billing.models import Generation
from billing.relay.upstream import run_sync
from billing.services.metering.pricing import Usage, charge
from tests.fakes.upstream import PROMPT_TOKENS
from tests.relay.conftest import UPSTREAM_KEY_A, generation, main_account, settle_all, user_with_token

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def _cost(gen: Generation, input_tokens: int, output_tokens: int) -> int:
    return charge(gen.price_snapshot, Usage(input_tokens=input_tokens, output_tokens=output_tokens), gen.rate)


def test_chat_answer_has_generation_id_and_cost_and_settles_exactly_that(relay, upstreams):
    user, token, key = user_with_token("10")
    before = main_account(user).balance
    raw = relay.client(key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100)
    answer = raw.parse()

    assert answer.id.startswith("gen-")
    assert raw.headers["x-generation-id"] == answer.id
    assert answer.model == "gpt-4o-mini"
    assert answer.choices[0].message.content.startswith("word0")
    gen = generation(answer.id)
    expected = _cost(gen, PROMPT_TOKENS, 12)
    assert Decimal(str(answer.usage.cost)) == Decimal(expected) / 10**9
    assert answer.usage.prompt_tokens == PROMPT_TOKENS and answer.usage.completion_tokens == 12

    # What the upstream saw: our channel's key (never the user's sk- token) and the request as sent.
    path, body, authorization = upstreams.a.requests[-1]
    assert (path, authorization) == ("/chat/completions", f"Bearer {UPSTREAM_KEY_A}")
    assert key not in str(upstreams.a.requests)
    assert body["messages"] == MESSAGES and body["max_tokens"] == 100

    assert settle_all() == 1
    gen.refresh_from_db()
    assert (gen.state, gen.final_cost, gen.charge_basis) == ("settled", expected, "reported")
    account = main_account(user)
    assert (account.balance, account.held) == (before - expected, 0)

    # The id the API returned is the one /v1/generation finds, settled (served by Django on the same server).
    looked_up = relay.get("/v1/generation", key, id=answer.id)
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["state"] == "settled"


def test_upstream_model_name_is_used_upstream_and_ours_is_answered(relay, upstreams):
    from billing.models import ChannelModel
    from tests.relay.conftest import relay_refresh

    ChannelModel.objects.filter(channel__name="primary", model__name="gpt-4o-mini").update(upstream_name="openai/gpt-4o-mini-2024")
    relay_refresh()
    _, _, key = user_with_token("10")
    answer = relay.client(key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert upstreams.a.requests[-1][1]["model"] == "openai/gpt-4o-mini-2024"
    assert answer.model == "gpt-4o-mini"


def test_stream_passes_chunks_with_generation_id_and_charges_upstream_usage(relay, upstreams):
    user, _, key = user_with_token("10")

    async def run():
        client = relay.async_client(key)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    chunks = run_sync(run())
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("gen-")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(f" word{i}" for i in range(12))
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens == 12
    # The relay asked the upstream for usage in the last chunk.
    assert upstreams.a.requests[-1][1]["stream_options"] == {"include_usage": True}

    gen = generation(chunks[0].id)
    expected = _cost(gen, PROMPT_TOKENS, 12)
    assert Decimal(str(usage_chunk.usage.cost)) == Decimal(expected) / 10**9
    settle_all()
    gen.refresh_from_db()
    assert (gen.state, gen.final_cost, gen.charge_basis) == ("settled", expected, "reported")


def test_stream_without_include_usage_gets_no_usage_chunk_but_is_still_charged_from_it(relay, upstreams):
    _, _, key = user_with_token("10")
    chunks = list(relay.client(key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks), "a client that did not ask for usage gets no choice-less chunk"
    assert upstreams.a.requests[-1][1]["stream_options"] == {"include_usage": True}
    settle_all()
    gen = generation(chunks[0].id)
    assert (gen.output_tokens, gen.charge_basis) == (12, "reported")


def test_upstream_without_usage_is_charged_from_counted_text(relay, upstreams):
    upstreams.a.reset(no_usage=True, words=30)
    _, _, key = user_with_token("10")
    client = relay.client(key)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    settle_all()
    for public_id in (answer.id, chunks[0].id):
        gen = generation(public_id)
        assert gen.state == "settled" and gen.charge_basis == "counted"
        assert gen.input_tokens == gen.est_input_tokens  # our estimate of the prompt
        assert 30 <= gen.output_tokens <= 120  # 30 words counted by the documented per-character rule
        assert gen.final_cost == _cost(gen, gen.input_tokens, gen.output_tokens) > 0


def test_client_disconnect_mid_stream_cancels_upstream_and_charges_what_was_produced(relay, upstreams):
    upstreams.a.reset(words=400, chunk_delay=0.02)
    user, _, key = user_with_token("10")
    received = 0
    with httpx.stream("POST", relay.base + "/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}) as response:
        public_id = response.headers["x-generation-id"]
        for line in response.iter_lines():
            if line.startswith("data:") and "word" in line:
                received += 1
                if received == 5:
                    break  # the client goes away
    until = time.monotonic() + 10
    while time.monotonic() < until and not (upstreams.a.streams_cancelled and generation(public_id).state != "held"):
        time.sleep(0.05)
    assert upstreams.a.streams_cancelled == 1, "the upstream request was not cancelled"
    assert upstreams.a.streams_finished == 0
    settle_all()
    gen = generation(public_id)
    assert gen.state == "settled" and gen.charge_basis == "counted"
    assert 0 < gen.output_tokens < 400, "charged for what was produced, not the whole answer"
    account = main_account(user)
    assert account.held == 0
