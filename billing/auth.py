"""DRF authentication: `Authorization: Bearer sk-...` for users' API tokens, `Bearer gw-...` for gateways.

Each class tells the other kind of key apart and says so, instead of a bare "invalid key".
"""

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from billing.models import GatewayKey
from billing.services import gateway_authenticate, token_authenticate
from synstar.errors import AuthenticationFailed


def _bearer(request) -> str | None:
    header = get_authorization_header(request).decode("latin-1").strip()
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed("Use the header 'Authorization: Bearer <key>'.", code="invalid_authorization")
    return value.strip()


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            return None
        token = token_authenticate(raw_key=raw)
        if not token.is_enabled:
            raise AuthenticationFailed("This API token is disabled.", code="token_disabled")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise AuthenticationFailed("This API token has expired.", code="token_expired")
        if not token.user.is_active:
            raise AuthenticationFailed("This account is deactivated.", code="account_inactive")
        return token.user, token

    def authenticate_header(self, request):
        return "Bearer"


class GatewayAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            return None
        gateway = gateway_authenticate(raw_key=raw)
        return gateway, gateway

    def authenticate_header(self, request):
        return "Bearer"


class IsGateway(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, GatewayKey)
