from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from synstar.accounts.selectors import time_zones
from synstar.accounts.services import user_language_set, user_time_zone_set
from synstar.errors import InvalidRequest, SynstarError


@login_required
def settings_page(request):
    zone_error = ""
    if request.method == "POST":
        try:
            user_time_zone_set(user=request.user, time_zone=request.POST.get("time_zone", ""))
            messages.success(request, _("Time zone saved."), extra_tags="form-time-zone")
            return redirect("console:settings")
        except SynstarError:
            zone_error = _("Choose a time zone from the list.")
    return render(request, "console/settings.html", {
        "status_changes": request.user.status_changes.all()[:5],
        "time_zones": sorted(time_zones()),
        "zone_error": zone_error,
    })


@require_POST
def set_language(request):
    """Django's set_language (the cookie, then back to `next`), and the account's setting when signed in.

    An empty `language` means "the browser's language": the cookie and the account's setting are cleared."""
    language = request.POST.get("language", "")
    try:
        if request.user.is_authenticated:
            user_language_set(user=request.user, language=language)
        elif language and language not in {code for code, _name in settings.LANGUAGES}:
            raise InvalidRequest(code="invalid_language")
    except InvalidRequest as error:
        return render(request, "400.html", {"message": error.message}, status=400)
    response = django_set_language(request)
    if not language:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response
