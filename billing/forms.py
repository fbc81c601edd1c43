from typing import cast

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from billing.models import ApiToken, BudgetPeriod, Generation, ModelPrice
from billing.selectors.tokens import groups_for_user
from synstar.errors import SynstarError
from synstar.money import format_usd, parse_usd


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label=_("Name"))
    group: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None, empty_label=None, to_field_name="name", label=_("Group"), help_text=_("Decides the price rate of requests")
    )
    unlimited = forms.BooleanField(required=False, initial=True, label=_("Unlimited quota"),
                                   help_text=_("Without a quota, the account balance is the only limit."))
    quota = forms.CharField(required=False, label=_("Quota (USD)"), help_text=_("Most this token may spend, e.g. 25.00"))
    expires_at = forms.DateTimeField(required=False, label=_("Expires"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    allowed_models = forms.ModelMultipleChoiceField(
        queryset=ModelPrice.objects.filter(is_active=True), required=False, to_field_name="name",
        widget=forms.SelectMultiple(attrs={"size": 6}), label=_("Allowed models"), help_text=_("None selected: every model"),
    )
    allowed_ips = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label=_("Allowed IPs"),
                                  help_text=_("One IP or CIDR range per line; empty: any IP"))
    can_read_account = forms.BooleanField(
        required=False, initial=False, label=_("Read account"),
        help_text=_("Also let this token read the wallet, bills, referrals and every token's usage through the API. "
                    "Leave it off for a token that only makes requests: a leaked key then exposes nothing else."),
    )

    budget = forms.CharField(required=False, label=_("Budget (USD)"),
                             help_text=_("Most this token may spend per period, besides the quota; empty: no budget"))
    budget_period = forms.ChoiceField(choices=BudgetPeriod.choices, initial=BudgetPeriod.MONTH, required=False,
                                      label=_("Budget resets every"),
                                      help_text=_("At 00:00 in the budget time zone; weeks start on Monday"))
    rpm_limit = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label=_("Requests per minute"),
                                   help_text=_("Empty: no limit. Requests over it get 429 with Retry-After"))

    def __init__(self, *args, user, token=None, **kwargs):
        if token is not None:
            kwargs.setdefault("initial", {}).update({
                "budget": "" if token.budget is None else format_usd(token.budget, places=None),
                "budget_period": token.budget_period,
                "rpm_limit": token.rpm_limit,
            })
            kwargs.setdefault("initial", {}).update({
                "name": token.name,
                "group": token.group,
                "unlimited": token.quota is None,
                "quota": "" if token.quota is None else format_usd(token.quota, places=None),
                "expires_at": token.expires_at,
                "allowed_models": ModelPrice.objects.filter(name__in=token.allowed_models),
                "allowed_ips": "\n".join(token.allowed_ips),
                "can_read_account": token.can_read_account,
            })
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["group"]).queryset = groups_for_user(user=user)
        self.fields["budget_period"].help_text = _("At 00:00 %(zone)s; weeks start on Monday") % {
            "zone": settings.TOKEN_BUDGET_TIME_ZONE}

    def clean_quota(self):
        raw = self.cleaned_data.get("quota", "").strip()
        if not raw:
            return None
        try:
            return parse_usd(raw, allow_zero=True, field=_("Quota"))
        except SynstarError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_budget(self):
        raw = (self.cleaned_data.get("budget") or "").strip()
        if not raw:
            return None
        try:
            return parse_usd(raw, allow_zero=True, field=str(_("Budget")))
        except SynstarError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self):
        data = super().clean() or {}
        if not data.get("unlimited") and data.get("quota") is None and "quota" not in self.errors:
            self.add_error("quota", _("Enter a quota, or tick Unlimited."))
        return data

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {
            "name": d["name"],
            "group": d["group"],
            "quota": None if d["unlimited"] else d["quota"],
            "expires_at": d.get("expires_at"),
            "allowed_models": [m.name for m in d.get("allowed_models") or []],
            "allowed_ips": [line for line in (d.get("allowed_ips") or "").splitlines() if line.strip()],
            "can_read_account": bool(d.get("can_read_account")),
            "budget": d.get("budget"),
            "budget_period": d.get("budget_period") or BudgetPeriod.MONTH,
            "rpm_limit": d.get("rpm_limit"),
        }


class UsageFilterForm(forms.Form):
    token: forms.ModelChoiceField = forms.ModelChoiceField(queryset=None, required=False, empty_label=_("All tokens"), label=_("Token"))
    model = forms.ChoiceField(required=False, label=_("Model"))
    state = forms.ChoiceField(required=False, label=_("Status"))
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("From"))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("To"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["token"]).queryset = ApiToken.objects.filter(user=user)
        cast(forms.ChoiceField, self.fields["model"]).choices = [("", _("All models"))] + [
            (n, n) for n in ModelPrice.objects.values_list("name", flat=True)
        ]
        cast(forms.ChoiceField, self.fields["state"]).choices = [("", _("All statuses"))] + list(Generation.State.choices)
