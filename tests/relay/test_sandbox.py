"""The quickstart's sandbox channel: with no real channel, every endpoint answers locally (labelled), and the
balance moves as for a real upstream. It is off as soon as a real channel is enabled."""

from __future__ import annotations

import io

import httpx
import openai
import pytest
from django.utils import timezone

from billing.demo import channels_load
from billing.models import Channel, ChannelModel, ModelPrice, RelayTask
from billing.relay.sandbox import LABEL
from billing.relay.videos import relay_tasks_poll
from tests.relay.conftest import channel_make, main_account, relay_refresh, settle_all, user_with_token
from tests.relay.test_endpoints import _wav

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(relay_server):
    channels_load()
    relay_refresh()
    return relay_server


def test_sandbox_answers_every_endpoint_and_charges(sandbox):
    user, _, key = user_with_token("10")
    before = main_account(user).balance
    client = sandbox.client(key)
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello sandbox"}])
    assert chat.choices[0].message.content.startswith(LABEL) and "hello sandbox" in chat.choices[0].message.content
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}], stream=True)
        if c.choices
    )
    assert streamed.startswith(LABEL)
    assert len(client.embeddings.create(model="text-embedding-3-small", input="x").data[0].embedding) == 16
    assert client.images.generate(model="dall-e-3", prompt="a dot").data[0].b64_json
    assert client.audio.speech.create(model="tts-1", voice="alloy", input="hi").content[:4] == b"RIFF"
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(_wav(2.0)), "audio/wav")).text
    assert text.startswith(LABEL) and "2.0 s" in text
    rerank = client.post("/rerank", body={"model": "rerank-v3.5", "query": "cat", "documents": ["dog", "cat"]}, cast_to=httpx.Response).json()
    assert rerank["results"][0]["index"] == 1
    video = client.videos.create(model="veo-3", prompt="waves", seconds="4")
    RelayTask.objects.update(next_poll_at=timezone.now())
    relay_tasks_poll()
    assert client.videos.retrieve(video.id).status == "completed"
    settle_all()
    account = main_account(user)
    assert account.held == 0 and account.balance < before


def test_sandbox_is_off_when_a_real_channel_exists(sandbox, upstreams):
    channel_make("real", upstreams.url_a, "k", models=[])
    ChannelModel.objects.create(channel=Channel.objects.get(name="real"), model=ModelPrice.objects.get(name="gpt-4o-mini"))
    relay_refresh()
    _, _, key = user_with_token("10")
    client = sandbox.client(key)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert not answer.choices[0].message.content.startswith(LABEL)
    with pytest.raises(openai.APIStatusError) as caught:  # the sandbox no longer covers the other models
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    assert {m.id for m in client.models.list()} == {"gpt-4o-mini"}
    settle_all()


def test_demo_data_adds_the_sandbox_once_and_keeps_operator_changes(db):
    channels_load()
    Channel.objects.filter(kind="sandbox").update(name="my sandbox", is_enabled=False)
    channels_load()
    assert list(Channel.objects.values_list("name", "is_enabled")) == [("my sandbox", False)]
