"""The relay meters through the same service as an external gateway, under a built-in gateway key that
no one can present (its key hash is of a random value nobody keeps)."""

from __future__ import annotations

import hashlib
import secrets
import threading

from billing.models import GatewayKey

RELAY_GATEWAY_NAME = "relay (built-in)"

_lock = threading.Lock()
_gateway: GatewayKey | None = None


def relay_gateway() -> GatewayKey:
    global _gateway
    with _lock:
        if _gateway is None:
            _gateway, _ = GatewayKey.objects.get_or_create(
                name=RELAY_GATEWAY_NAME,
                defaults={"key_hash": hashlib.sha256(secrets.token_bytes(32)).hexdigest(), "key_prefix": "relay"},
            )
        return _gateway


def relay_gateway_cached() -> GatewayKey | None:
    return _gateway


def relay_gateway_forget() -> None:
    """Tests roll the database back between cases: forget the cached row."""
    global _gateway
    with _lock:
        _gateway = None
