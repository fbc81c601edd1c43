"""Times in the user's time zone: the account's setting, else the zone the browser reported (a cookie the
console's pages set from `Intl.DateTimeFormat`), else the site's TIME_ZONE."""

import zoneinfo

from django.utils import timezone

from synstar.accounts.selectors import time_zone_for

BROWSER_ZONE_COOKIE = "tz"


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
