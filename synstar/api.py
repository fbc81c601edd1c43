"""Shared DRF pieces: the money field, the permissions that say what an API token may do, and the parsers
that refuse characters no text field can hold. The OpenAPI schema class is in synstar.schema."""

from __future__ import annotations

import io
import re
from typing import Any, ClassVar

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import parsers, serializers
from rest_framework.permissions import BasePermission
from rest_framework.utils.serializer_helpers import BindingDict

from synstar.errors import InvalidRequest, PermissionDenied
from synstar.i18n import lazy_format
from synstar.money import InvalidAmount, format_usd, parse_usd


# A serializer whose fields are copied from the class and bound once per process, not per instance.
#
# DRF deep-copies every declared field for each serializer instance, so that an instance may change its own
# fields; on the gateway's hold endpoint that copy was most of its two serializers' cost
# (bench/hold_profile.py). Validation and output still run DRF's own field code, so answers and errors are
# the same. For flat serializers that never change their fields per instance: the shared fields are bound
# to one template instance of the class, so that is their `parent` and `root` (a SerializerMethodField
# calls the template's method, of the same class). An instance given a context or `partial` (which fields
# read through their root) gets its own fields, as DRF makes them. (A comment, not a docstring: the OpenAPI
# schema would show a docstring as every subclass's description.)
class SharedFieldsSerializer(serializers.Serializer):
    _shared: ClassVar[dict[type, BindingDict]] = {}

    @property
    def fields(self) -> BindingDict:
        if self._context or self.partial:
            if "_own_fields" not in self.__dict__:
                self.__dict__["_own_fields"] = _bound_fields(self)
            return self.__dict__["_own_fields"]
        fields = self._shared.get(type(self))
        if fields is None:  # two threads may both build it: the same fields, the last one kept
            fields = self._shared[type(self)] = _bound_fields(type(self)())
        return fields


def _bound_fields(serializer: serializers.Serializer) -> BindingDict:
    """What DRF's `Serializer.fields` makes: copies of the declared fields, bound to `serializer`."""
    fields = BindingDict(serializer)
    for name, field in serializer.get_fields().items():
        fields[name] = field
    return fields


@extend_schema_field({"type": "string", "format": "decimal", "example": "12.50"})
class MoneyField(serializers.Field):
    """USD as an exact decimal string in JSON; integer nanos inside."""

    def __init__(self, *, allow_negative: bool = False, allow_zero: bool = False, **kwargs):
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_representation(self, value: int) -> str:
        return format_usd(value, places=None)

    def to_internal_value(self, data) -> int:
        try:
            return parse_usd(
                data, allow_negative=self.allow_negative, allow_zero=self.allow_zero, field=self.field_name or "amount"
            )
        except InvalidAmount as exc:
            raise serializers.ValidationError(exc.message) from None


# --- what a caller may do ------------------------------------------------------------------------
# An `sk-` token is for inference. Reading the account through the API (wallet, bills, referrals, every
# token's usage) is a permission the user grants per token (`can_read_account`); creating top-ups, redeeming
# codes, transferring proceeds and managing tokens need the signed-in console session, so a leaked key
# exposes as little as possible. The protocol: a console session authenticates with `request.auth` None;
# an API credential is `request.auth` and says `can_read_account`.


class TokenScope(PermissionDenied):
    code = "token_scope"


def _authenticated(request) -> bool:
    return bool(request.user and request.user.is_authenticated)


class IsSession(BasePermission):
    """The signed-in console session only; an API token is refused with 403 token_scope."""

    schema_schemes = ("cookieAuth",)  # synstar.schema: the security the operation declares
    schema_note = "Auth: the signed-in console session only; an sk- token gets 403 `token_scope`."

    def has_permission(self, request, view):
        if not _authenticated(request):
            return False  # DRF answers 401
        if request.auth is not None:
            raise TokenScope(
                _("API tokens cannot do this: creating top-ups, redeeming codes, transferring proceeds and managing tokens need the signed-in console session.")
            )
        return True


class CanReadAccount(BasePermission):
    """The console session, or an API token the user allowed to read the account."""

    schema_note = (
        "Auth: the console session, or an sk- token with the \"Read account\" permission "
        "(`can_read_account`); another sk- token gets 403 `token_scope`."
    )

    def has_permission(self, request, view):
        if not _authenticated(request):
            return False
        if request.auth is not None and not getattr(request.auth, "can_read_account", False):
            raise TokenScope(
                _('This API token may not read the account; allow "Read account" for it on the console\'s tokens page, or use the console.')
            )
        return True


class IsApiToken(BasePermission):
    """Calls about the token itself: an API token only (a console session is told so)."""

    schema_schemes = ("apiToken",)
    schema_note = "Auth: the sk- token described (any token; a console session gets 403 `token_required`)."

    def has_permission(self, request, view):
        if not _authenticated(request):
            return False
        if request.auth is None:
            raise PermissionDenied(
                _("This endpoint describes the API token it is called with: send 'Authorization: Bearer sk-...'."),
                code="token_required",
            )
        return True


# --- characters no input may carry ----------------------------------------------------------------
# PostgreSQL text cannot hold NUL, and a lone UTF-16 surrogate cannot be encoded at all: either one reaching
# a query (a lookup by name, an id in a path) used to end in a 500. They are refused at the edge, for every
# input at once: the path, the query string and form bodies (synstar.middleware), and parsed API bodies
# (the parsers below), whatever field or view they were meant for.


class InvalidCharacters(InvalidRequest):
    code = "invalid_characters"


_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def bad_character(text: str) -> str | None:
    """The first character of `text` that no input may carry (NUL, a lone surrogate), or None."""
    found = _BAD_CHARACTER.search(text)
    return found.group() if found else None


def refuse_bad_characters(text: str, *, where: str | Promise) -> None:
    char = bad_character(text)
    if char is not None:
        raise InvalidCharacters(lazy_format(_("%(where)s contains a character that is not allowed (U+%(ord)s)."), where=where, ord=format(ord(char), '04X')))


_BODY = _("The request body")


def refuse_bad_characters_in(data: Any, *, where: str | Promise = _BODY) -> None:
    """Walk parsed JSON or form data: every key and every string value."""
    if isinstance(data, str):
        refuse_bad_characters(data, where=where)
    elif isinstance(data, dict):
        for key, value in data.items():
            name = str(key)
            refuse_bad_characters(name, where=lazy_format(_("%(where)s (a key)"), where=where))
            refuse_bad_characters_in(value, where=lazy_format(_("Field %(name)s"), name=repr(name)) if where is _BODY else where)
    elif isinstance(data, (list, tuple)):
        for item in data:
            refuse_bad_characters_in(item, where=where)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        # JSON can only spell NUL or a surrogate as a \u escape (a raw control character is a parse error),
        # so bodies without one skip the walk: the metering hot path pays a byte search.
        if b"\\u" in raw:
            refuse_bad_characters_in(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        refuse_bad_characters_in({key: data.getlist(key) for key in data})
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        refuse_bad_characters_in({key: result.data.getlist(key) for key in result.data})
        return result
