"""The account's language setting, applied to every request of a signed-in user.

Runs after AuthenticationMiddleware and LocaleMiddleware: an account with a language set reads the
console in it whatever the browser says; an account without one (the default) keeps what LocaleMiddleware
chose (the switch's cookie, else Accept-Language)."""

from django.conf import settings
from django.utils import translation


class UserLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.supported = {code for code, _ in settings.LANGUAGES}

    def __call__(self, request):
        user = getattr(request, "user", None)
        language = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
        if language in self.supported:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
