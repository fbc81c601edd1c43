"""Console pages: API tokens."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from billing.forms import TokenForm
from billing.models import ApiToken
from billing.selectors.tokens import tokens_for_user
from billing.services.tokens import token_create, token_delete, token_update
from synstar.errors import SynstarError

NEW_KEY_SESSION = "billing.new_api_key"


@login_required
def tokens_page(request):
    form = TokenForm(request.POST or None, user=request.user, initial={"name": gettext("My token")})
    if request.method == "POST" and form.is_valid():
        try:
            _, raw_key = token_create(user=request.user, **form.service_kwargs())
        except SynstarError as exc:
            form.add_error(None, exc.message)
        else:
            # Post/Redirect/Get: a reload never creates a second token. The key rides in the session
            # for exactly one page view, then is gone.
            request.session[NEW_KEY_SESSION] = raw_key
            return redirect("console:tokens")
    new_key = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    return render(request, "console/tokens.html", {"tokens": tokens_for_user(user=request.user), "form": form, "new_key": new_key})


@login_required
def token_edit(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user, deleted_at__isnull=True)
    form = TokenForm(request.POST or None, user=request.user, token=token)
    if request.method == "POST" and form.is_valid():
        try:
            token_update(token_id=token.pk, user=request.user, **form.service_kwargs())
            messages.success(request, gettext("Token %(name)s saved.") % {"name": repr(form.cleaned_data["name"])})
            return redirect("console:tokens")
        except SynstarError as exc:
            form.add_error(None, exc.message)
    return render(request, "console/token_edit.html", {"token": token, "form": form})


@login_required
@require_POST
def token_toggle(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user, deleted_at__isnull=True)
    token = token_update(token_id=token.pk, user=request.user, is_enabled=not token.is_enabled)
    if request.htmx:
        return render(request, "console/_token_row.html", {"token": token})
    return redirect("console:tokens")


@login_required
@require_POST
def token_remove(request, token_id: int):
    try:
        token_delete(token_id=token_id, user=request.user)
    except SynstarError as exc:
        messages.error(request, exc.message)
    if request.htmx:
        return render(request, "console/_empty.html")
    messages.success(request, gettext("Token deleted. Requests with it are refused from now on."))
    return redirect("console:tokens")
