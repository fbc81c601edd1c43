"""DRF authentication: `Authorization: Bearer sk-...` for users' API tokens, `Bearer gw-...` for gateways,
and their OpenAPI security schemes.

Each class tells the other kind of key apart and says so, instead of a bare "invalid key".
"""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from billing.models import ApiToken, GatewayKey
from billing.services.tokens import gateway_authenticate, token_authenticate
from synstar.errors import AuthenticationFailed


def _bearer(request) -> str | None:
    header = get_authorization_header(request).decode("latin-1").strip()
    if not header:
        return None
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed(_("Use the header 'Authorization: Bearer <key>'."), code="invalid_authorization")
    return value.strip()


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            return None
        token = token_authenticate(raw_key=raw)
        if not token.is_enabled:
            raise AuthenticationFailed(_("This API token is disabled."), code="token_disabled")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise AuthenticationFailed(_("This API token has expired."), code="token_expired")
        if not token.user.is_active:
            raise AuthenticationFailed(_("This account is deactivated."), code="account_inactive")
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


# --- which token is calling ----------------------------------------------------------------------
# What a caller may do (session only, account-read) is decided by the permissions in synstar.api.


def api_token(request) -> ApiToken | None:
    """The sk- token the request authenticated with, or None (a console session)."""
    return request.auth if isinstance(request.auth, ApiToken) else None


def token_sees_all_usage(request) -> bool:
    """A console session or an account-read token sees every token's requests; a plain token its own."""
    token = api_token(request)
    return token is None or token.can_read_account


# --- OpenAPI: the two Bearer schemes --------------------------------------------------------------


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sk-...",
            "description": (
                "A user's API token: `Authorization: Bearer sk-...`. Serves inference and its own usage; "
                "reading the account needs the token's \"Read account\" permission."
            ),
        }


class GatewayKeyScheme(OpenApiAuthenticationExtension):
    target_class = GatewayAuthentication
    name = "gatewayKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "gw-...",
            "description": "A gateway's service key: `Authorization: Bearer gw-...` (metering only).",
        }
