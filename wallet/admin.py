import uuid

from django import forms
from django.contrib import admin, messages
from django.shortcuts import render

from synstar.errors import SynstarError
from synstar.money import format_usd, parse_usd
from wallet.models import Account, Entry, Hold, Transaction
from wallet.services import adjustment_create


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is append-only: admins read it, services write it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _usd(nanos):
    return f"${format_usd(nanos, places=None, grouping=True)}"


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
    fields = ["account", "amount_usd"]
    readonly_fields = fields

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
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
        },
    )


# --- top-ups ----------------------------------------------------------------------------------------

from wallet.models import BonusRule, PaymentMethod, Refund, TopUpOrder, WebhookEvent  # noqa: E402


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
    fields = ["created_at", "source", "base_removed", "bonus_removed", "shortfall", "provider_refund_id", "actor", "reason"]
    readonly_fields = fields

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
    from wallet.orders import order_refund

    if "apply" in request.POST:
        form = RefundForm(request.POST)
        if form.is_valid():
            for order in queryset:
                try:
                    refund = order_refund(order_id=order.pk, source=Refund.Source.ADMIN, cash=form.cleaned_data["amount"],
                                          key=f"admin:{form.cleaned_data['idempotency_key']}:{order.pk}",
                                          actor=request.user, reason=form.cleaned_data["reason"])
                    modeladmin.message_user(request, f"{order.order_no}: refunded {_usd(refund.base_removed)} "
                                                     f"and clawed back {_usd(refund.bonus_removed)} bonus.")
                except SynstarError as exc:
                    modeladmin.message_user(request, f"{order.order_no}: {exc.message}", messages.ERROR)
            return None
    else:
        form = RefundForm(initial={"idempotency_key": uuid.uuid4().hex})
    return render(request, "admin/refund_orders.html", {
        **modeladmin.admin_site.each_context(request), "title": "Refund orders", "form": form, "orders": queryset,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME, "opts": modeladmin.model._meta,
    })


@admin.register(TopUpOrder)
class TopUpOrderAdmin(ReadOnlyAdmin):
    list_display = ["order_no", "user", "method", "provider", "amount_usd", "bonus_usd", "status", "refunded_usd", "created_at"]
    list_filter = ["status", "provider", "method"]
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
    list_display = ["order", "source", "base_removed", "bonus_removed", "shortfall", "actor", "created_at"]
    list_filter = ["source"]
    search_fields = ["order__order_no", "key"]


@admin.action(description="Reprocess selected events")
def reprocess_action(modeladmin, request, queryset):
    from wallet.tasks import webhook_process_task

    count = 0
    for event in queryset.exclude(status=WebhookEvent.Status.PROCESSED):
        WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.RECEIVED)
        webhook_process_task.delay(event.pk)
        count += 1
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
