from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from wallet.selectors.ledger import wallet_activity, wallet_statistics


@login_required
def dashboard(request):
    context: dict[str, object] = {"stats": wallet_statistics(user=request.user)}
    if request.htmx:
        return render(request, "console/_stats.html", context)
    context["activity"] = wallet_activity(user=request.user, limit=10)
    return render(request, "console/dashboard.html", context)
