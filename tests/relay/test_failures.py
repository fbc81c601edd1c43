"""What goes wrong, through the SDK: every refusal writes nothing and answers in OpenAI's error shape with
our code; failing channels fail over and leave rotation; when nothing answers, nothing is charged."""

from __future__ import annotations

from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from billing.models import ApiToken, Channel, ChannelEvent, Generation
from billing.relay.probe import channels_probe
from synstar.money import usd
from tests.relay.conftest import main_account, relay_refresh, settle_all, user_with_token, wait_reported

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "hi"}]


def _assert_nothing_held(user) -> None:
    account = main_account(user)
    assert account.held == 0
    assert not Generation.objects.filter(user=user).exists()


def _error(exc: openai.APIStatusError) -> dict:
    return exc.response.json()["error"]


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("no_key", 401, "missing_api_key"),
        ("bad_key", 401, "invalid_api_key"),
        ("poor", 402, "insufficient_balance"),
        ("quota", 402, "token_quota_exceeded"),
        ("disabled", 403, "token_disabled"),
        ("expired", 403, "token_expired"),
        ("model_not_allowed", 403, "model_not_allowed"),
        ("ip_not_allowed", 403, "ip_not_allowed"),
        ("unknown_model", 404, "model_not_found"),
        ("bad_max_tokens", 400, "invalid_request"),
        ("no_messages", 400, "invalid_request"),
        ("private_group", 403, "group_not_allowed"),
    ],
)
def test_refusals_answer_openai_shape_and_write_nothing(relay, upstreams, setup, status, code):
    user, token, key = user_with_token("0.01" if setup == "poor" else "10")
    kwargs = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
    if setup == "poor":
        main_account(user)  # balance: signup grant + $0.01, far below gpt-4o's hold for 1000 tokens
        kwargs["max_tokens"] = 1_000_000
    elif setup == "quota":
        ApiToken.objects.filter(pk=token.pk).update(quota=usd("0.0001"))
    elif setup == "disabled":
        ApiToken.objects.filter(pk=token.pk).update(is_enabled=False)
    elif setup == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    elif setup == "model_not_allowed":
        ApiToken.objects.filter(pk=token.pk).update(allowed_models=["gpt-4o-mini"])
    elif setup == "ip_not_allowed":
        ApiToken.objects.filter(pk=token.pk).update(allowed_ips=["10.0.0.0/8"])
    elif setup == "unknown_model":
        kwargs["model"] = "no-such-model"
    elif setup == "bad_max_tokens":
        kwargs["max_tokens"] = -5
    elif setup == "no_messages":
        kwargs["messages"] = []
    elif setup == "private_group":
        from billing.models import TokenGroup

        ApiToken.objects.filter(pk=token.pk).update(group=TokenGroup.objects.get(name="discount"))
    if setup == "no_key":
        response = httpx.post(relay.base + "/chat/completions", json=kwargs, timeout=10)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        _assert_nothing_held(user)
        return
    client = relay.client("sk-not-a-real-key" if setup == "bad_key" else key)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**kwargs)
    assert caught.value.status_code == status
    error = _error(caught.value)
    assert error["code"] == code and error["message"] and error["type"]
    assert "param" in error
    _assert_nothing_held(user)
    assert upstreams.a.requests == [] and upstreams.b.requests == []


def test_bad_json_body_is_400_not_500(relay):
    _, _, key = user_with_token("10")
    response = httpx.post(relay.base + "/chat/completions", content=b"{not json", timeout=10,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_5xx_fails_over_to_the_next_channel_and_a_failing_channel_leaves_rotation(relay, upstreams, settings):
    upstreams.a.reset(status=500)
    _, _, key = user_with_token("10")
    client = relay.client(key)
    for _ in range(settings.RELAY_CHANNEL_FAILURES):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.id.startswith("gen-")
    assert len(upstreams.a.requests) == settings.RELAY_CHANNEL_FAILURES
    assert len(upstreams.b.requests) == settings.RELAY_CHANNEL_FAILURES
    primary = Channel.objects.get(name="primary")
    assert primary.consecutive_failures == settings.RELAY_CHANNEL_FAILURES
    assert primary.open_until is not None and primary.open_until > timezone.now()
    assert "HTTP 500" in primary.last_error
    assert ChannelEvent.objects.filter(channel=primary, kind="opened").count() == 1
    assert UPSTREAM_KEYS_NOT_IN(primary.last_error)

    # Out of rotation: the next requests go straight to the backup.
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(upstreams.a.requests) == settings.RELAY_CHANNEL_FAILURES

    # Its time out passes; the probe finds it answering again and puts it back.
    upstreams.a.reset()
    Channel.objects.filter(pk=primary.pk).update(open_until=timezone.now() - timedelta(seconds=1))
    assert channels_probe() == {"restored": 1, "failed": 0}
    primary.refresh_from_db()
    assert (primary.consecutive_failures, primary.open_until) == (0, None)
    assert ChannelEvent.objects.filter(channel=primary, kind="restored").exists()
    relay_refresh()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert upstreams.a.requests[-1][0] == "/chat/completions"
    settle_all()


def UPSTREAM_KEYS_NOT_IN(text: str) -> bool:  # noqa: N802 - reads as a sentence in the assert
    from tests.relay.conftest import UPSTREAM_KEY_A, UPSTREAM_KEY_B

    return UPSTREAM_KEY_A not in text and UPSTREAM_KEY_B not in text


def test_probe_that_fails_keeps_the_channel_out_longer(relay, upstreams):
    upstreams.a.reset(status=503)
    Channel.objects.filter(name="primary").update(consecutive_failures=3, open_until=timezone.now() - timedelta(seconds=1))
    assert channels_probe() == {"restored": 0, "failed": 1}
    primary = Channel.objects.get(name="primary")
    assert primary.open_until > timezone.now() + timedelta(seconds=30)  # doubled from the 30 s cool-down


@pytest.mark.parametrize("failure", ["429", "timeout", "connection"])
def test_rate_limit_timeout_and_connection_errors_fail_over(relay, upstreams, failure):
    if failure == "429":
        upstreams.a.reset(status=429)
    elif failure == "timeout":
        upstreams.a.reset(hang=True)
        Channel.objects.filter(name="primary").update(read_timeout=0.5)
    else:
        Channel.objects.filter(name="primary").update(base_url="http://127.0.0.1:9/v1")  # nothing listens there
    relay_refresh()
    user, _, key = user_with_token("10")
    answer = relay.client(key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.choices[0].message.content
    assert len(upstreams.b.requests) == 1
    settle_all()
    assert Generation.objects.get(public_id=answer.id).state == "settled"


def test_when_no_channel_answers_the_hold_is_released_and_nothing_charged(relay, upstreams):
    upstreams.a.reset(status=502)
    upstreams.b.reset(status=503)
    user, token, key = user_with_token("10")
    before = main_account(user).balance
    with pytest.raises(openai.APIStatusError) as caught:
        relay.client(key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert _error(caught.value)["code"] == "upstream_unavailable"
    gen_id = caught.value.response.headers.get("x-generation-id")
    generation = Generation.objects.get(user=user)
    assert generation.state == "reported" and generation.outcome == "failed"
    settle_all()
    generation.refresh_from_db()
    assert (generation.state, generation.final_cost) == ("released", 0)
    account = main_account(user)
    assert (account.balance, account.held) == (before, 0)
    token.refresh_from_db()
    assert (token.used, token.held) == (0, 0)
    assert gen_id is None or gen_id == generation.public_id


def test_upstream_4xx_is_passed_through_and_released(relay, upstreams):
    upstreams.a.reset(status=400)
    user, _, key = user_with_token("10")
    before = main_account(user).balance
    with pytest.raises(openai.BadRequestError) as caught:
        relay.client(key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "fake upstream says 400" in _error(caught.value)["message"]
    assert upstreams.b.requests == [], "the client's fault is not retried elsewhere"
    settle_all()
    generation = Generation.objects.get(user=user)
    assert generation.state == "released"
    assert main_account(user).balance == before


def test_error_event_in_stream_with_nothing_produced_is_released(relay, upstreams):
    upstreams.a.reset(error_in_stream=True)
    user, _, key = user_with_token("10")
    with httpx.stream("POST", relay.base + "/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                      json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}) as response:
        body = response.read()
        public_id = response.headers["x-generation-id"]
    assert b"fake upstream broke" in body
    wait_reported(public_id)
    settle_all()
    assert Generation.objects.get(user=user).state == "released"


def test_model_without_any_channel_is_503_and_holds_nothing(relay):
    from billing.models import ChannelModel

    ChannelModel.objects.filter(model__name="gpt-4o").delete()
    relay_refresh()
    user, _, key = user_with_token("10")
    with pytest.raises(openai.APIStatusError) as caught:
        relay.client(key).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert _error(caught.value)["code"] == "model_not_available"
    _assert_nothing_held(user)
