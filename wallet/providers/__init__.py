"""Payment providers. Each is reached only through its own client module, which speaks the provider's
API and webhook format and hands the rest of the code provider-neutral values (base.py)."""

from django.conf import settings

from wallet.providers import airwallex_client, sandbox_client, stripe_client
from wallet.providers.base import ProviderError, SignatureInvalid

CLIENTS = {"stripe": stripe_client, "airwallex": airwallex_client, "sandbox": sandbox_client}


def client_for(provider: str):
    try:
        return CLIENTS[provider]
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}") from None


def configured(provider: str) -> bool:
    if provider == "stripe":
        return bool(settings.STRIPE_SECRET_KEY)
    if provider == "airwallex":
        return bool(settings.AIRWALLEX_CLIENT_ID and settings.AIRWALLEX_API_KEY)
    if provider == "sandbox":
        return sandbox_enabled()
    return False


def sandbox_enabled() -> bool:
    """The sandbox stands in when no real provider is configured, and is off whenever one is."""
    return settings.PAYMENTS_SANDBOX and not (configured("stripe") or configured("airwallex"))


def provider_for_method(method) -> str | None:
    """Which provider will take a payment for this method: its own, the sandbox, or none."""
    if configured(method.provider):
        return method.provider
    if sandbox_enabled():
        return "sandbox"
    return None


__all__ = ["CLIENTS", "ProviderError", "SignatureInvalid", "client_for", "configured", "provider_for_method", "sandbox_enabled"]
