"""Console page: alerts and notifications (low-balance threshold, customer webhook, delivery log, test event)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from synstar.errors import SynstarError
from synstar.money import format_usd, parse_usd
from wallet.selectors.alerts import alert_settings_for, low_balance_state, webhook_deliveries
from wallet.services.alerts import alert_settings_update, default_threshold, webhook_test_send

NEW_SECRET_SESSION = "wallet.new_webhook_secret"


class AlertSettingsForm(forms.Form):
    threshold = forms.CharField(
        required=False, max_length=20, label=gettext_lazy("Low-balance alert below (USD)"),
        help_text=gettext_lazy("Empty: the default. 0 turns the alert off."),
    )
    webhook_url = forms.CharField(
        required=False, max_length=500, label=gettext_lazy("Webhook URL"),
        widget=forms.TextInput(attrs={"placeholder": "https://example.com/hooks/synstar", "inputmode": "url"}),
        help_text=gettext_lazy("We POST signed JSON events here. Empty: no webhook."),
    )
    new_secret = forms.BooleanField(required=False, label=gettext_lazy("Generate a new signing secret"))

    def clean_threshold(self):
        raw = (self.cleaned_data.get("threshold") or "").strip()
        if not raw:
            return None
        try:
            return parse_usd(raw, allow_zero=True, field=str(_("Threshold")))
        except SynstarError as exc:
            raise forms.ValidationError(exc.message) from None


@login_required
def alerts_page(request):
    row = alert_settings_for(user=request.user)
    initial = {
        "threshold": "" if row is None or row.low_balance_threshold is None else format_usd(row.low_balance_threshold, places=None),
        "webhook_url": row.webhook_url if row else "",
    }
    form = AlertSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            _row, secret = alert_settings_update(
                user=request.user, threshold=d["threshold"], webhook_url=d["webhook_url"], new_secret=d["new_secret"]
            )
        except SynstarError as exc:
            form.add_error(None, exc.message)
        else:
            if secret:
                request.session[NEW_SECRET_SESSION] = secret  # shown once, on the next page view
            messages.success(request, _("Alert settings saved."))
            return redirect("console:alerts")
    new_secret = request.session.pop(NEW_SECRET_SESSION, None) if request.method == "GET" else None
    return render(request, "console/alerts.html", {
        "form": form, "settings_row": row, "state": low_balance_state(user=request.user),
        "default_threshold": default_threshold(), "deliveries": webhook_deliveries(user=request.user),
        "new_secret": new_secret,
    })


@login_required
@require_POST
def alerts_test(request):
    try:
        delivery = webhook_test_send(user=request.user)
        messages.success(request, _("Test event %(id)s queued; its delivery appears in the log below.") % {"id": delivery.event_id})
    except SynstarError as exc:
        messages.error(request, exc.message)
    return redirect("console:alerts")
