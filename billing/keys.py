"""Secret keys: `sk-` for users' API tokens, `gw-` for gateways. Shown once, stored as sha256.

The keys carry 238 bits of randomness, so an unsalted fast hash is safe (as GitHub and Stripe tokens
are): no dictionary to attack, and the lookup by hash stays one indexed query per request.
"""

import hashlib
import secrets
import string

ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 40
PREFIX_LENGTH = 10  # "sk-" + 7 characters shown in lists


def key_generate(kind: str) -> str:
    assert kind in ("sk", "gw")
    return f"{kind}-" + "".join(secrets.choice(ALPHABET) for _ in range(KEY_LENGTH))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def key_kind(key: str) -> str | None:
    if key.startswith("sk-"):
        return "sk"
    if key.startswith("gw-"):
        return "gw"
    return None
