from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def settings_page(request):
    return render(request, "console/settings.html", {"status_changes": request.user.status_changes.all()[:5]})
