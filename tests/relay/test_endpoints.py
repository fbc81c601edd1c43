"""Every other endpoint through the SDK: embeddings, images, speech, transcriptions, rerank, models and the
video task (held at submission, polled by a real Celery worker, settled when it finishes)."""

from __future__ import annotations

import io
import struct
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.utils import timezone

from billing.models import ApiToken, RelayTask
from billing.services.metering.pricing import Usage, charge
from tests.fakes.upstream import EMBEDDING_TOKENS_PER_INPUT, TRANSCRIPTION_SECONDS, VIDEO_SECONDS
from tests.relay.conftest import generation, main_account, settle_all, user_with_token

pytestmark = pytest.mark.django_db(transaction=True)


def _cost(public_id: str, usage: Usage) -> int:
    gen = generation(public_id)
    return charge(gen.price_snapshot, usage, gen.rate)


def _settled(public_id: str, expected: int) -> None:
    settle_all()
    gen = generation(public_id)
    assert (gen.state, gen.final_cost) == ("settled", expected)


def test_embeddings_charge_the_upstream_tokens(relay, upstreams):
    _, _, key = user_with_token("10")
    raw = relay.client(key).embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b", "c"])
    answer = raw.parse()
    public_id = raw.headers["x-generation-id"]
    assert len(answer.data) == 3 and answer.usage.prompt_tokens == 3 * EMBEDDING_TOKENS_PER_INPUT
    expected = _cost(public_id, Usage(input_tokens=3 * EMBEDDING_TOKENS_PER_INPUT))
    assert Decimal(str(answer.usage.cost)) == Decimal(expected) / 10**9  # type: ignore[attr-defined]
    _settled(public_id, expected)


def test_images_charge_per_image_made(relay, upstreams):
    _, _, key = user_with_token("10")
    raw = relay.client(key).images.with_raw_response.generate(model="dall-e-3", prompt="a red square", n=2)
    answer = raw.parse()
    assert len(answer.data) == 2
    public_id = raw.headers["x-generation-id"]
    expected = _cost(public_id, Usage(units=Decimal(2)))
    assert expected == 80_000_000  # 2 x $0.04
    _settled(public_id, expected)


def test_speech_returns_audio_and_charges_per_thousand_characters(relay, upstreams):
    _, _, key = user_with_token("10")
    text = "x" * 2500
    raw = relay.client(key).audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input=text)
    assert raw.content == b"ID3fake-mp3-bytes"
    public_id = raw.headers["x-generation-id"]
    expected = _cost(public_id, Usage(units=Decimal("2.5")))
    assert Decimal(raw.headers["x-generation-cost"]) == Decimal(expected) / 10**9
    _settled(public_id, expected)


def _wav(seconds: float, rate: int = 8000) -> bytes:
    frames = int(seconds * rate)
    return (b"RIFF" + struct.pack("<I", 36 + frames) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
            + b"data" + struct.pack("<I", frames) + b"\x80" * frames)


def test_transcription_multipart_charges_the_upstream_duration(relay, upstreams):
    _, _, key = user_with_token("10")
    raw = relay.client(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", io.BytesIO(_wav(3.0)), "audio/wav")
    )
    assert raw.parse().text == "hello from the fake upstream"
    public_id = raw.headers["x-generation-id"]
    gen = generation(public_id)
    assert gen.est_units == Decimal("0.050000")  # 3 s of WAV, read from its header, in minutes
    path, body, _ = upstreams.a.requests[-1]
    assert path == "/audio/transcriptions" and b'name="model"' in body and b"RIFF" in body
    expected = _cost(public_id, Usage(units=Decimal(TRANSCRIPTION_SECONDS) / 60))
    _settled(public_id, expected)
    assert generation(public_id).units == Decimal("0.700000")


def test_rerank_is_charged_per_request(relay, upstreams):
    _, _, key = user_with_token("10")
    client = relay.client(key)
    # The SDK has no rerank method: its generic post, as clients of Cohere-style rerank through OpenAI SDKs do.
    response = client.post("/rerank", body={"model": "rerank-v3.5", "query": "cats", "documents": ["dogs", "cats"]},
                           cast_to=httpx.Response).json()
    assert len(response["results"]) == 2 and response["id"].startswith("gen-")
    expected = _cost(response["id"], Usage())
    assert expected == 2_000_000 and Decimal(str(response["usage"]["cost"])) == Decimal("0.002")
    _settled(response["id"], expected)


def test_models_lists_what_the_token_may_use(relay):
    _, token, key = user_with_token("10")
    names = {m.id for m in relay.client(key).models.list()}
    assert {"gpt-4o", "gpt-4o-mini", "dall-e-3", "veo-3"} <= names
    ApiToken.objects.filter(pk=token.pk).update(allowed_models=["gpt-4o-mini", "tts-1"])
    assert {m.id for m in relay.client(key).models.list()} == {"gpt-4o-mini", "tts-1"}
    with pytest.raises(openai.AuthenticationError):
        relay.client("sk-nope").models.list()


def test_video_task_is_held_at_submission_and_settled_when_the_worker_sees_it_finish(relay, upstreams, celery_worker):
    from billing.tasks import relay_tasks_poll_task

    user, _, key = user_with_token("20")
    client = relay.client(key)
    video = client.videos.create(model="veo-3", prompt="a cat on a skateboard", seconds="8")
    assert video.id.startswith("gen-") and video.status == "queued" and video.model == "veo-3"
    gen = generation(video.id)
    assert gen.state == "held" and gen.estimated_cost == 6_000_000_000  # 8 s x $0.75, held at submission
    assert gen.deadline - gen.created_at > timedelta(hours=1)
    assert main_account(user).held == gen.estimated_cost

    # The Celery worker polls the upstream until the task finishes (in_progress twice, then completed).
    until = time.monotonic() + 60
    while time.monotonic() < until:
        RelayTask.objects.filter(generation=gen).update(next_poll_at=timezone.now())
        relay_tasks_poll_task.delay()
        time.sleep(0.5)
        if generation(video.id).state not in ("held",):
            break
    assert client.videos.retrieve(video.id).status in ("completed",)
    until = time.monotonic() + 30
    while generation(video.id).state != "settled" and time.monotonic() < until:
        time.sleep(0.2)  # the worker settles the report in its batch
    gen = generation(video.id)
    assert (gen.state, gen.final_cost) == ("settled", int(VIDEO_SECONDS) * 750_000_000)
    assert main_account(user).held == 0
    assert client.videos.download_content(video.id).read() == b"fake-mp4"


def test_video_task_that_fails_upstream_is_released(relay, upstreams):
    from billing.relay.videos import relay_tasks_poll

    upstreams.a.reset(video_fails=True)
    user, _, key = user_with_token("20")
    client = relay.client(key)
    video = client.videos.create(model="veo-3", prompt="something", seconds="4")
    RelayTask.objects.update(next_poll_at=timezone.now())
    assert relay_tasks_poll() == 1
    assert relay_tasks_poll() == 0  # finished: not polled again
    answer = client.videos.retrieve(video.id)
    assert answer.status == "failed" and "refused" in answer.error.message
    settle_all()
    assert generation(video.id).state == "released"
    assert main_account(user).held == 0


def test_another_users_video_is_not_found(relay, upstreams):
    _, _, key = user_with_token("20")
    _, _, other = user_with_token("20")
    video = relay.client(key).videos.create(model="veo-3", prompt="mine", seconds="4")
    with pytest.raises(openai.NotFoundError):
        relay.client(other).videos.retrieve(video.id)
