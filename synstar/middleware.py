"""Refuse characters no input may carry (NUL, lone surrogates) in the path, the query string and form
bodies, before any view or lookup sees them: a 400 in the one error shape (an error page in the console),
code `invalid_characters`. Parsed API bodies (JSON, forms) are checked by the parsers in synstar.api."""

from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from synstar.api import (
    InvalidCharacters,
    refuse_bad_characters,
    refuse_bad_characters_in,
)
from synstar.errors import json_error
from synstar.views import API_PREFIXES

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RefuseBadCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            refuse_bad_characters(request.path, where=_("The path"))
            refuse_bad_characters_in({key: request.GET.getlist(key) for key in request.GET}, where=_("The query"))
            if request.method == "POST" and request.content_type in _FORM_TYPES:
                # Django parses these itself (CSRF reads them anyway); the raw body stays readable.
                refuse_bad_characters_in({key: request.POST.getlist(key) for key in request.POST}, where=_("The form"))
        except InvalidCharacters as error:
            if request.path.startswith(API_PREFIXES):
                return json_error(error)
            return render(request, "400.html", {"message": error.message}, status=400)
        return self.get_response(request)
