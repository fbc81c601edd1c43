from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from synstar.accounts.selectors import time_zones
from synstar.accounts.services import user_time_zone_set
from synstar.errors import SynstarError


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
