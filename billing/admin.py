from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from billing.models import (
    ApiToken,
    BillingTier,
    GatewayKey,
    Generation,
    ModelPrice,
    TierModelRate,
    TokenGroup,
)
from billing.selectors.catalog import model_names
from billing.services.tokens import gateway_key_create, token_update
from synstar.admin_shared import ChoiceListField, IpNetworkListField, ReadOnlyAdmin, UsdAdminMixin
from synstar.admin_shared import usd_column as _usd
from synstar.errors import SynstarError


@admin.register(ModelPrice)
class ModelPriceAdmin(UsdAdminMixin, admin.ModelAdmin):
    usd_fields = ("input_per_million", "output_per_million", "cached_input_per_million", "long_input_per_million",
                  "long_output_per_million", "long_cached_input_per_million", "request_price", "unit_price",
                  "minimum_charge")
    list_display = ["name", "display_name", "category", "billing_type", "input_usd", "output_usd", "max_output", "request_usd",
                    "unit_usd", "is_active"]
    list_filter = ["category", "billing_type", "is_active"]
    search_fields = ["name", "display_name", "provider"]
    list_editable = ["is_active"]

    @admin.display(description="Input / M")
    def input_usd(self, obj):
        return _usd(obj.input_per_million) if obj.billing_type == "per_token" else ""

    @admin.display(description="Output / M")
    def output_usd(self, obj):
        return _usd(obj.output_per_million) if obj.billing_type == "per_token" else ""

    @admin.display(description="Default max output")
    def max_output(self, obj):
        return f"{obj.default_max_output_tokens:,}" if obj.billing_type == "per_token" else ""

    @admin.display(description="Per request")
    def request_usd(self, obj):
        return _usd(obj.request_price) if obj.billing_type == "per_request" else ""

    @admin.display(description="Per unit")
    def unit_usd(self, obj):
        return f"{_usd(obj.unit_price)} / {obj.get_unit_display()}" if obj.billing_type == "per_unit" else ""


class TierModelRateInline(admin.TabularInline):
    model = TierModelRate
    extra = 0
    autocomplete_fields = ["model"]


@admin.register(BillingTier)
class BillingTierAdmin(admin.ModelAdmin):
    list_display = ["name", "rate", "description"]
    inlines = [TierModelRateInline]


@admin.register(TokenGroup)
class TokenGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "tier", "is_public", "is_default", "description"]
    filter_horizontal = ["allowed_users"]


class ApiTokenAdminForm(forms.ModelForm):
    allowed_models = ChoiceListField(
        verbose_name=str(_("models")), choices=lambda: [(n, n) for n in model_names()],
        help_text=_("None selected: every model."),
    )
    allowed_ips = IpNetworkListField(label=_("Allowed IPs"))

    class Meta:
        model = ApiToken
        fields = ["name", "group", "quota", "is_enabled", "can_read_account", "expires_at", "allowed_models", "allowed_ips"]

    def clean_quota(self):
        quota = self.cleaned_data.get("quota")
        spent = self.instance.used + self.instance.held if self.instance.pk else 0
        if quota is not None and quota < spent:
            raise forms.ValidationError(
                _("The quota cannot be below what this token has already used (%(spent)s, including in-flight "
                  "requests).") % {"spent": _usd(spent)})
        return quota


@admin.register(ApiToken)
class ApiTokenAdmin(UsdAdminMixin, admin.ModelAdmin):
    form = ApiTokenAdminForm
    usd_fields = ("quota", "used", "held", "budget", "period_used")
    list_display = ["name", "key_prefix", "user", "group", "quota_usd", "used_usd", "held_usd", "is_enabled", "can_read_account", "expires_at", "deleted_at"]
    list_filter = ["is_enabled", "can_read_account", "group"]
    search_fields = ["name", "key_prefix", "user__email"]
    list_select_related = ["user", "group"]
    readonly_fields = ["user", "key_prefix", "key_hash", "used", "held", "created_at", "last_used_at", "deleted_at",
                       "budget", "budget_period", "period_start", "period_used", "rpm_limit"]  # budgets: the user's, via the service
    fields = ["user", "name", "group", "key_prefix", "key_hash", "quota", "used", "held", "is_enabled", "can_read_account", "expires_at",
              "allowed_models", "allowed_ips", "created_at", "last_used_at", "deleted_at",
              "budget", "budget_period", "period_start", "period_used", "rpm_limit"]

    def has_add_permission(self, request):
        return False  # tokens are created by users, or with `manage.py create_api_token`

    @admin.display(description=_("Quota"), ordering="quota")
    def quota_usd(self, obj):
        return _("unlimited") if obj.quota is None else _usd(obj.quota)

    def save_model(self, request, obj, form, change):
        # Through the token service, under the token's row lock: a plain save would write back the used and
        # held amounts read when the form opened, undoing the requests settled meanwhile.
        changed = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        try:
            token_update(token_id=obj.pk, user=obj.user, **changed)
        except SynstarError as exc:
            messages.error(request, exc.message)


@admin.register(GatewayKey)
class GatewayKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "is_active", "created_at", "last_used_at"]
    fields = ["name", "is_active", "key_prefix", "created_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        gateway, raw = gateway_key_create(name=obj.name)
        obj.pk = gateway.pk
        messages.warning(request, f"Gateway key for {gateway.name} (shown once, store it now): {raw}")


@admin.register(Generation)
class GenerationAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("estimated_cost", "final_cost")
    exclude = ["price_snapshot"]
    readonly_fields = ["price_snapshot_usd"]
    list_display = ["public_id", "created_at", "user", "model", "group_name", "state", "estimated_usd", "final_usd", "charge_basis",
                    "over_estimate"]
    list_filter = ["state", "outcome", "charge_basis", "over_estimate"]
    search_fields = ["public_id", "user__email", "request_id"]
    list_select_related = ["user", "model"]
    show_full_result_count = False

    @admin.display(description="Estimate")
    def estimated_usd(self, obj):
        return _usd(obj.estimated_cost)

    @admin.display(description="Charged")
    def final_usd(self, obj):
        return _usd(obj.final_cost)

    @admin.display(description=_("Listed prices used"))
    def price_snapshot_usd(self, obj):
        money = set(ModelPriceAdmin.usd_fields)
        return "; ".join(
            f"{name.replace('_', ' ')}: {_usd(value) if name in money else value}"
            for name, value in (obj.price_snapshot or {}).items() if value not in (None, "")
        )

# The relay's admin (channels, tasks) lives beside the relay.
import billing.relay.admin  # noqa: E402,F401
