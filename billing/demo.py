"""Demo catalog: a realistic price list across categories, tiers `default` (1.0) and `discount` (0.3)."""

from decimal import Decimal
from typing import Any

from billing.models import BillingTier, Channel, ModelPrice, TokenGroup
from billing.services.metering.pricing import DEFAULT_MAX_OUTPUT_TOKENS
from synstar.money import usd

T, R, U = "per_token", "per_request", "per_unit"

# name, display, provider, category, billing type, prices (USD strings; "max_output": the default maximum output
# a hold freezes for when the gateway sends none, near each model's own output limit)
CATALOG: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
    ("gpt-4o", "GPT-4o", "OpenAI", "chat", T, {"input": "2.50", "output": "10", "cached": "1.25", "max_output": 16_384}),
    ("gpt-4o-mini", "GPT-4o mini", "OpenAI", "chat", T, {"input": "0.15", "output": "0.60", "cached": "0.075", "max_output": 16_384}),
    ("claude-sonnet-4", "Claude Sonnet 4", "Anthropic", "chat", T,
     {"input": "3", "output": "15", "cached": "0.30", "long_threshold": 200_000, "long_input": "6", "long_output": "22.50", "long_cached": "0.60",
      "max_output": 64_000}),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", "Google", "vision", T,
     {"input": "1.25", "output": "10", "cached": "0.31", "long_threshold": 200_000, "long_input": "2.50", "long_output": "15", "long_cached": "0.625",
      "max_output": 65_536}),
    ("deepseek-chat", "DeepSeek V3", "DeepSeek", "chat", T, {"input": "0.27", "output": "1.10", "cached": "0.07", "max_output": 8_192}),
    ("qwen-vl-max", "Qwen VL Max", "Alibaba", "vision", T, {"input": "0.80", "output": "3.20", "max_output": 8_192}),
    ("dall-e-3", "DALL·E 3", "OpenAI", "image", U, {"unit": "image", "unit_price": "0.04"}),
    ("flux-1.1-pro", "FLUX 1.1 pro", "Black Forest Labs", "image", U, {"unit": "image", "unit_price": "0.04"}),
    ("veo-3", "Veo 3", "Google", "video", U, {"unit": "second", "unit_price": "0.75"}),
    ("whisper-1", "Whisper", "OpenAI", "transcription", U, {"unit": "minute", "unit_price": "0.006"}),
    ("tts-1", "TTS", "OpenAI", "tts", U, {"unit": "1k_chars", "unit_price": "0.015"}),
    ("suno-v4", "Suno v4 song", "Suno", "music", R, {"request": "0.10"}),
    ("text-embedding-3-small", "Embeddings 3 small", "OpenAI", "embeddings", T, {"input": "0.02", "output": "0", "minimum": "0.000001"}),
    ("rerank-v3.5", "Rerank 3.5", "Cohere", "rerank", R, {"request": "0.002"}),
]


def _n(prices, key):
    return usd(prices[key]) if key in prices else None


def catalog_load() -> None:
    """Demo data once: each table is filled only while it is empty, so a price, tier or group an operator
    edited or deleted in admin stays as they left it."""
    for order, (name, display, provider, category, billing_type, p) in enumerate(CATALOG if not ModelPrice.objects.exists() else []):
        ModelPrice.objects.get_or_create(
            name=name,
            defaults={
                "display_name": display,
                "provider": provider,
                "category": category,
                "billing_type": billing_type,
                "input_per_million": _n(p, "input") or 0,
                "output_per_million": _n(p, "output") or 0,
                "cached_input_per_million": _n(p, "cached"),
                "long_context_threshold": p.get("long_threshold"),
                "long_input_per_million": _n(p, "long_input"),
                "long_output_per_million": _n(p, "long_output"),
                "long_cached_input_per_million": _n(p, "long_cached"),
                "request_price": _n(p, "request") or 0,
                "unit": p.get("unit", ""),
                "unit_price": _n(p, "unit_price") or 0,
                "minimum_charge": _n(p, "minimum") or 0,
                "default_max_output_tokens": p.get("max_output", DEFAULT_MAX_OUTPUT_TOKENS),
                "sort_order": order,
            },
        )
    if TokenGroup.objects.exists():
        return
    standard, _ = BillingTier.objects.get_or_create(
        name="standard", defaults={"rate": Decimal("1.0"), "description": "Listed prices"}
    )
    discount, _ = BillingTier.objects.get_or_create(
        name="discount-0.3", defaults={"rate": Decimal("0.3"), "description": "30% of listed prices"}
    )
    TokenGroup.objects.get_or_create(
        name="default", defaults={"tier": standard, "is_public": True, "is_default": True, "description": "Listed prices, open to everyone"}
    )
    TokenGroup.objects.get_or_create(
        name="discount", defaults={"tier": discount, "is_public": False, "description": "x0.3, for invited accounts"}
    )


def grant_discount_group(user) -> None:
    TokenGroup.objects.get(name="discount").allowed_users.add(user)


SANDBOX_CHANNEL = "Sandbox (answers locally)"


def channels_load() -> None:
    """The quickstart's sandbox channel, once: only while no channel exists at all (an operator's
    channels, or a sandbox they disabled or renamed, stay as they left them). It serves every model and
    is ignored as soon as a real channel is enabled."""
    if not Channel.objects.exists():
        Channel.objects.create(name=SANDBOX_CHANNEL, kind=Channel.Kind.SANDBOX, priority=-100)
