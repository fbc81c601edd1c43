"""What a relay request may consume, read from its body: the hold's upper bound.

Input tokens use a documented per-character estimate instead of a tokenizer (no vocabulary to ship or
download, and it runs in C): every ASCII character counts 1/3 of a token (tokenizers average about 1/4
in English and code) and every other character a whole token (CJK text is close to 1 per character),
plus 4 tokens per chat message and a fixed 1,000 per image input. The estimate only sizes the hold; the
charge comes from the upstream's usage, or from the same count applied to the output when the upstream
gives none (charge basis `counted`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.utils.translation import gettext_lazy as _

from billing.models.catalog import MAX_TOKENS
from synstar.errors import InvalidRequest
from synstar.i18n import lazy_format

MESSAGE_OVERHEAD = 4
IMAGE_INPUT_TOKENS = 1000
# Audio whose length we cannot read from a header is assumed to be at least this many bytes per second
# (16 kbit/s, below common speech codecs' rates), so the hold is an upper bound.
AUDIO_BYTES_PER_SECOND = 2000


def text_tokens(text: str) -> int:
    """The per-character estimate of a text's tokens (see the module docstring)."""
    if not text:
        return 0
    ascii_count = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_count / 3) + (len(text) - ascii_count)


def _content_tokens(content) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text"):
                    total += text_tokens(str(part.get("text") or ""))
                elif kind in ("image_url", "input_image", "image"):
                    total += IMAGE_INPUT_TOKENS
                else:
                    total += text_tokens(json.dumps(part, ensure_ascii=False))
            else:
                total += text_tokens(str(part))
        return total
    return text_tokens(json.dumps(content, ensure_ascii=False))


@dataclass(frozen=True)
class Estimate:
    input_tokens: int = 0
    max_output_tokens: int | None = None
    units: Decimal = Decimal(0)


def _positive_int(body: dict, *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
            raise InvalidRequest(lazy_format(_("%(name)s must be a whole number from 1 to %(MAX_TOKENS)s."), name=name, MAX_TOKENS=format(MAX_TOKENS, ',')), code="invalid_request", param=name)
        return value
    return None


def _choices(body: dict) -> int:
    n = body.get("n", 1)
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise InvalidRequest(_("n must be a whole number from 1 to 128."), code="invalid_request", param="n")
    return n


def chat(body: dict) -> Estimate:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(_("messages must be a non-empty list."), code="invalid_request", param="messages")
    tokens = 0
    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest(_("Each message must be an object with a role and content."), code="invalid_request", param="messages")
        tokens += MESSAGE_OVERHEAD + _content_tokens(message.get("content")) + _content_tokens(message.get("tool_calls"))
    if body.get("tools"):
        tokens += text_tokens(json.dumps(body["tools"], ensure_ascii=False))
    max_output = _positive_int(body, "max_completion_tokens", "max_tokens")
    n = _choices(body)
    return Estimate(input_tokens=max(tokens, 1), max_output_tokens=None if max_output is None else max_output * n)


def embeddings(body: dict) -> Estimate:
    value = body.get("input")
    if value is None or value == "" or value == []:
        raise InvalidRequest(_("input is required."), code="invalid_request", param="input")
    if isinstance(value, str):
        tokens = text_tokens(value)
    elif isinstance(value, list) and all(isinstance(v, int) for v in value):
        tokens = len(value)
    elif isinstance(value, list):
        tokens = 0
        for item in value:
            if isinstance(item, str):
                tokens += text_tokens(item)
            elif isinstance(item, list):
                tokens += len(item)
            else:
                raise InvalidRequest(_("input must be a string, a list of strings or token arrays."), code="invalid_request", param="input")
    else:
        raise InvalidRequest(_("input must be a string, a list of strings or token arrays."), code="invalid_request", param="input")
    return Estimate(input_tokens=max(tokens, 1), max_output_tokens=1)


def _prompt(body: dict, name: str = "prompt") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(lazy_format(_("%(name)s is required."), name=name), code="invalid_request", param=name)
    return value


def images(body: dict, *, unit: str) -> Estimate:
    prompt = _prompt(body)
    return Estimate(input_tokens=max(text_tokens(prompt), 1), units=Decimal(_choices(body)))


def speech(body: dict, *, unit: str) -> Estimate:
    text = _prompt(body, "input")
    return Estimate(input_tokens=max(text_tokens(text), 1), units=speech_units(text, unit=unit))


def speech_units(text: str, *, unit: str) -> Decimal:
    """Text-to-speech is billed on the characters sent: per 1k characters, or per character otherwise."""
    if unit == "1k_chars":
        return (Decimal(len(text)) / 1000).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
    return Decimal(len(text))


def audio_seconds(data: bytes) -> float | None:
    """The length of a WAV file from its header, or None for other formats."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    byte_rate = int.from_bytes(data[28:32], "little")
    length = len(data) - 44
    if data[36:40] == b"data":  # the data chunk's own length (anything after it is not audio)
        length = min(length, int.from_bytes(data[40:44], "little"))
    return length / byte_rate if byte_rate > 0 else None


def duration_units(seconds: float, *, unit: str) -> Decimal:
    value = Decimal(str(max(seconds, 0)))
    if unit == "minute":
        value = value / 60
    return max(value.quantize(Decimal("0.000001"), rounding=ROUND_CEILING), Decimal("0.000001"))


def transcription(data: bytes, *, unit: str) -> Estimate:
    if not data:
        raise InvalidRequest(_("file is required."), code="invalid_request", param="file")
    seconds = audio_seconds(data)
    if seconds is None:
        seconds = len(data) / AUDIO_BYTES_PER_SECOND
    return Estimate(input_tokens=max(math.ceil(seconds * 10), 1), units=duration_units(seconds, unit=unit))


def rerank(body: dict) -> Estimate:
    query = _prompt(body, "query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise InvalidRequest(_("documents must be a non-empty list."), code="invalid_request", param="documents")
    tokens = text_tokens(query) * len(documents) + sum(_content_tokens(d if isinstance(d, str) else d.get("text") if isinstance(d, dict) else str(d)) for d in documents)
    return Estimate(input_tokens=max(tokens, 1), max_output_tokens=1, units=Decimal(1))


VIDEO_DEFAULT_SECONDS = 4


def video_seconds(body: dict) -> int:
    value = body.get("seconds", VIDEO_DEFAULT_SECONDS)
    try:
        seconds = int(str(value))
    except ValueError:
        raise InvalidRequest(_("seconds must be a whole number of seconds."), code="invalid_request", param="seconds") from None
    if not 1 <= seconds <= 600:
        raise InvalidRequest(_("seconds must be from 1 to 600."), code="invalid_request", param="seconds")
    return seconds


def video(body: dict, *, unit: str) -> Estimate:
    prompt = _prompt(body)
    seconds = video_seconds(body)
    units = Decimal(seconds) if unit == "second" else duration_units(seconds, unit=unit) if unit == "minute" else Decimal(1)
    return Estimate(input_tokens=max(text_tokens(prompt), 1), units=units)
