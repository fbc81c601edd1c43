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
