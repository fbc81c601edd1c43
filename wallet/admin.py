import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse
from django.shortcuts import render

from synstar.admin_shared import ReadOnlyAdmin
from synstar.admin_shared import usd_column as _usd
from synstar.errors import SynstarError
from synstar.money import format_usd, parse_usd
from wallet.models import (
    Account,
    AutoTopUp,
    AutoTopUpAttempt,
    BonusRule,
    CodeBatch,
    Entry,
    Hold,
    PaymentMethod,
    Redemption,
    RedemptionCode,
    Refund,
    TopUpOrder,
    Transaction,
    WebhookEvent,
)
from wallet.providers.base import ProviderError
from wallet.services.autotopup import autotopup_turn_off
from wallet.services.ledger import adjustment_create
from wallet.services.redemptions import batch_generate
from wallet.services.refunds import order_refund
from wallet.services.webhooks import webhook_events_requeue


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["code", "kind", "user", "balance_usd", "held_usd", "consumed_usd", "request_count"]
    list_filter = ["kind"]
    search_fields = ["code", "user__email"]
    list_select_related = ["user"]

    @admin.display(description="Balance", ordering="balance")
    def balance_usd(self, obj):
        return _usd(obj.balance) if obj.kind != Account.Kind.SYSTEM else "sum of entries"

    @admin.display(description="Held", ordering="held")
    def held_usd(self, obj):
        return _usd(obj.held)

    @admin.display(description="Consumed", ordering="consumed")
    def consumed_usd(self, obj):
        return _usd(obj.consumed)


class EntryInline(admin.TabularInline):
    model = Entry
    extra = 0
    can_delete = False
    fields = readonly_fields = ("account", "amount_usd")

    @admin.display(description="Amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "kind", "description", "actor", "idempotency_key"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "description", "reason", "entries__account__user__email"]
    inlines = [EntryInline]
    list_select_related = ["actor"]
    show_full_result_count = False


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "transaction", "account", "amount_usd"]
    search_fields = ["account__code", "account__user__email"]
    list_select_related = ["transaction", "account"]
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "amount_usd", "status", "settled_usd", "created_at", "expires_at", "closed_at"]
    list_filter = ["status"]
    search_fields = ["account__code", "account__user__email"]
    list_select_related = ["account"]
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Settled")
    def settled_usd(self, obj):
        return "—" if obj.settled_amount is None else _usd(obj.settled_amount)


class AdjustmentForm(forms.Form):
    amount = forms.CharField(
        help_text='USD, signed: "25.00" credits, "-5.00" debits (never below the available balance).'
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded with your name.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def clean_amount(self):
        try:
            return parse_usd(self.cleaned_data["amount"], allow_negative=True)
        except SynstarError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.action(description="Adjust balance (manual credit or debit, with reason)")
def adjust_balance_action(modeladmin, request, queryset):
    if "apply" in request.POST:
        form = AdjustmentForm(request.POST)
        if form.is_valid():
            done = 0
            for user in queryset:
                try:
                    adjustment_create(
                        user=user,
                        amount=form.cleaned_data["amount"],
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                        idempotency_key=f"adjust:{form.cleaned_data['idempotency_key']}:{user.pk}",
                    )
                    done += 1
                except SynstarError as exc:
                    modeladmin.message_user(request, f"{user.email}: {exc.message}", messages.ERROR)
            if done:
                modeladmin.message_user(
                    request, f"Adjusted {done} account(s) by ${format_usd(form.cleaned_data['amount'], places=None)}."
                )
            return None
    else:
        form = AdjustmentForm(initial={"idempotency_key": uuid.uuid4().hex})
    return render(
        request,
        "admin/adjust_balance.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Adjust balance",
            "form": form,
            "users": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
        },
    )


# --- top-ups ----------------------------------------------------------------------------------------



@admin.register(BonusRule)
class BonusRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "match", "amount_usd", "bonus_fixed_usd", "bonus_percent", "is_active"]
    list_editable = ["is_active"]

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Fixed bonus")
    def bonus_fixed_usd(self, obj):
        return _usd(obj.bonus_fixed)


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "provider", "provider_method", "countries", "is_enabled", "sort_order"]
    list_editable = ["is_enabled", "sort_order"]


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "source", "status", "base_removed", "bonus_removed", "shortfall", "base_restored",
                                "bonus_restored", "provider_refund_id", "actor", "reason", "failure_reason")

    def has_add_permission(self, request, obj=None):
        return False


class RefundForm(forms.Form):
    amount = forms.CharField(required=False, help_text="USD of base credits to refund; empty: as much as is still available")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def clean_amount(self):
        raw = self.cleaned_data["amount"].strip()
        if not raw:
            return None
        try:
            return parse_usd(raw)
        except SynstarError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.action(description="Refund (bonus clawed back first; used credits are not refundable)")
def refund_action(modeladmin, request, queryset):
    if "apply" in request.POST:
        form = RefundForm(request.POST)
        if form.is_valid():
            for order in queryset:
                try:
                    refund = order_refund(order_id=order.pk, source=Refund.Source.ADMIN, cash=form.cleaned_data["amount"],
                                          key=f"admin:{form.cleaned_data['idempotency_key']}:{order.pk}",
                                          actor=request.user, reason=form.cleaned_data["reason"])
                except ProviderError as exc:
                    if exc.retryable:
                        modeladmin.message_user(request, f"{order.order_no}: the refund is recorded and its credits removed, but "
                                                         "the provider did not answer; it will be asked again automatically.",
                                                messages.WARNING)
                    else:
                        modeladmin.message_user(request, f"{order.order_no}: {exc.message} Nothing was refunded; the "
                                                         "credits are back.", messages.ERROR)
                    continue
                except SynstarError as exc:
                    modeladmin.message_user(request, f"{order.order_no}: {exc.message}", messages.ERROR)
                    continue
                if refund.status == Refund.Status.FAILED:
                    modeladmin.message_user(request, f"{order.order_no}: this refund failed ({refund.failure_reason}).",
                                            messages.ERROR)
                else:
                    modeladmin.message_user(request, f"{order.order_no}: refunded {_usd(refund.base_removed)} "
                                                     f"and clawed back {_usd(refund.bonus_removed)} bonus "
                                                     f"({refund.get_status_display().lower()}).")
            return None
    else:
        form = RefundForm(initial={"idempotency_key": uuid.uuid4().hex})
    return render(request, "admin/refund_orders.html", {
        **modeladmin.admin_site.each_context(request), "title": "Refund orders", "form": form, "orders": queryset,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "opts": modeladmin.model._meta,
    })


@admin.register(TopUpOrder)
class TopUpOrderAdmin(ReadOnlyAdmin):
    list_display = ["order_no", "user", "method", "provider", "amount_usd", "bonus_usd", "status", "refunded_usd", "created_at"]
    list_filter = ["status", "provider", "method", "source"]
    search_fields = ["order_no", "user__email", "checkout_id", "payment_id"]
    list_select_related = ["user", "method"]
    inlines = [RefundInline]
    actions = [refund_action]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list (and its actions) but no editing of orders

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Bonus")
    def bonus_usd(self, obj):
        return _usd(obj.bonus)

    @admin.display(description="Refunded")
    def refunded_usd(self, obj):
        return _usd(obj.cash_refunded)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ["order", "source", "status", "base_removed", "bonus_removed", "shortfall", "base_restored", "actor", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["order__order_no", "key"]


@admin.action(description="Reprocess selected events")
def reprocess_action(modeladmin, request, queryset):
    count = webhook_events_requeue(event_ids=queryset.values_list("pk", flat=True))
    modeladmin.message_user(request, f"Queued {count} event(s) for processing (processed events are skipped).")


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "provider", "event_type", "event_id", "status", "attempts", "error"]
    list_filter = ["provider", "status", "event_type"]
    search_fields = ["event_id"]
    actions = [reprocess_action]
    readonly_fields = ["provider", "event_id", "event_type", "payload", "status", "error", "attempts", "received_at", "processed_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None


# --- redemption codes -----------------------------------------------------------------------------




class CodeBatchForm(forms.ModelForm):
    value_usd = forms.CharField(label="Value (USD)", help_text="Credited per redemption, e.g. 5.00")

    class Meta:
        model = CodeBatch
        fields = ["campaign", "value_usd", "count", "expires_at", "max_uses", "per_account_limit", "new_accounts_only",
                  "no_topup_only", "allowed_users", "allowed_countries", "is_promotional"]

    def clean_count(self):
        count = self.cleaned_data["count"]
        if not 1 <= count <= 100_000:
            raise forms.ValidationError("A batch has 1 to 100,000 codes.")
        return count

    def clean_value_usd(self):
        try:
            return parse_usd(self.cleaned_data["value_usd"])
        except SynstarError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(CodeBatch)
class CodeBatchAdmin(admin.ModelAdmin):
    """Adding a batch generates its codes and downloads them as CSV: the only time they are shown."""

    form = CodeBatchForm
    list_display = ["__str__", "campaign", "value_display", "count", "max_uses", "per_account_limit", "expires_at", "is_disabled", "created_at"]
    list_filter = ["is_promotional", "is_disabled"]
    search_fields = ["campaign"]
    filter_horizontal = ["allowed_users"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.modelform_factory(CodeBatch, fields=["is_disabled"])
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["is_disabled"] if obj is not None else super().get_fields(request, obj)

    @admin.display(description="Value")
    def value_display(self, obj):
        return _usd(obj.value)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        d = form.cleaned_data
        batch, csv_text = batch_generate(
            campaign=d["campaign"], value=d["value_usd"], count=d["count"], created_by=request.user,
            expires_at=d["expires_at"], max_uses=d["max_uses"], per_account_limit=d["per_account_limit"],
            new_accounts_only=d["new_accounts_only"], no_topup_only=d["no_topup_only"],
            allowed_users=d["allowed_users"], allowed_countries=d["allowed_countries"] or [],
            is_promotional=d["is_promotional"],
        )
        obj.pk = batch.pk
        request._generated_codes = (batch, csv_text)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        batch, csv_text = request._generated_codes
        response = HttpResponse(csv_text, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="codes-batch-{batch.pk}.csv"'
        return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(admin.ModelAdmin):
    list_display = ["__str__", "batch", "uses", "is_disabled"]
    list_filter = ["is_disabled", "batch"]
    search_fields = ["hint"]
    fields = ["batch", "hint", "uses", "is_disabled"]
    readonly_fields = ["batch", "hint", "uses"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "code", "amount", "ip"]
    search_fields = ["user__email"]
    list_select_related = ["user", "code"]


# --- auto top-up ----------------------------------------------------------------------------------


@admin.action(description="Turn auto top-up off for the selected users")
def autotopup_off_action(modeladmin, request, queryset):
    count = autotopup_turn_off(user_ids=queryset.values_list("user_id", flat=True), reason="Turned off by support.")
    modeladmin.message_user(request, f"Auto top-up turned off for {count} user(s).")


@admin.register(AutoTopUp)
class AutoTopUpAdmin(ReadOnlyAdmin):
    list_display = ["user", "enabled", "threshold_usd", "amount_usd", "daily_cap_usd", "card", "disabled_reason", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["user__email", "stripe_customer_id", "payment_method_id"]
    list_select_related = ["user"]
    actions = [autotopup_off_action]
    readonly_fields = ["user", "enabled", "threshold", "amount", "daily_cap", "stripe_customer_id", "payment_method_id", "card_brand",
                       "card_last4", "card_exp_month", "card_exp_year", "setup_checkout_id", "setup_intent_id", "disabled_reason",
                       "disabled_at", "updated_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list (and its action) but no editing: users change their own rule

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_usd(self, obj):
        return _usd(obj.threshold)

    @admin.display(description="Top-up", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Daily cap", ordering="daily_cap")
    def daily_cap_usd(self, obj):
        return _usd(obj.daily_cap)

    @admin.display(description="Card")
    def card(self, obj):
        return f"{obj.card_brand} •••• {obj.card_last4}" if obj.card_last4 else "—"


@admin.register(AutoTopUpAttempt)
class AutoTopUpAttemptAdmin(ReadOnlyAdmin):
    """The auto top-up orders (off-session charges of saved cards), with the provider's answer."""

    list_display = ["order_no", "user", "amount_usd", "bonus_usd", "status", "failure_reason", "provider_error", "payment_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["order_no", "user__email", "payment_id"]
    list_select_related = ["user"]
    readonly_fields = fields = ("order_no", "user", "amount", "bonus", "status", "payment_id", "failure_reason", "provider_error",
                                "created_at", "completed_at", "closed_at")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(source="auto")

    def has_change_permission(self, request, obj=None):
        return obj is None

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Bonus")
    def bonus_usd(self, obj):
        return _usd(obj.bonus)
