"""The account's settings applied to every request: its language and its time zone.

UserLanguageMiddleware runs after AuthenticationMiddleware and LocaleMiddleware: an account with a language
set reads the console in it whatever the browser says; an account without one (the default) keeps what
LocaleMiddleware chose (the switch's cookie, else Accept-Language).

TimeZoneMiddleware: times in the user's time zone: the account's setting, else the zone the browser reported
(a cookie the console's pages set from `Intl.DateTimeFormat`), else the site's TIME_ZONE."""

import zoneinfo

from django.conf import settings
from django.utils import timezone, translation

from synstar.accounts.selectors import time_zone_for

BROWSER_ZONE_COOKIE = "tz"


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


class TimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = time_zone_for(user=getattr(request, "user", None), browser_zone=request.COOKIES.get(BROWSER_ZONE_COOKIE, "")[:64])
        request.time_zone = zone
        timezone.activate(zoneinfo.ZoneInfo(zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
