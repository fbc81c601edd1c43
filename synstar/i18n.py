"""Languages: English and Simplified Chinese (settings.LANGUAGES), Django's gettext catalogs in locale/.

Error messages are translated when they are rendered, not when they are raised: a service raises an
error with a lazy message (`gettext_lazy`, or `lazy_format` when it has values in it), and the API's
exception handler, a console view or the relay turns it into text in the language of the request that
reads it, whichever thread raised it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.functional import Promise, lazy
from django.utils.translation import get_supported_language_variant
from django.utils.translation.trans_real import parse_accept_lang_header


def _format(message: str | Promise, params: dict[str, Any]) -> str:
    return str(message) % {key: str(value) if isinstance(value, Promise) else value for key, value in params.items()}


_lazy_format = lazy(_format, str)


def lazy_format(message: str | Promise, **params: Any) -> str:
    """`message % params`, done when the text is read: `lazy_format(_("Unknown model %(name)s."), name=m)`."""
    return _lazy_format(message, params)


def language_from_accept_language(header: str) -> str:
    """The supported language an Accept-Language header asks for (LocaleMiddleware's rule), else the default.

    For code that answers outside Django's middleware (the relay's Starlette routes)."""
    for code, _quality in parse_accept_lang_header(header or ""):
        if code == "*":
            break
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def user_language(user: Any) -> str:
    """The language to write to this user in outside a request (emails from Celery tasks): the account's
    setting, else the site's default. Use as `with translation.override(user_language(user)): ...`."""
    language = getattr(user, "language", "") or ""
    return language if language in {code for code, _name in settings.LANGUAGES} else settings.LANGUAGE_CODE
