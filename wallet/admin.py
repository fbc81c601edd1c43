import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from synstar.admin_shared import CountryListField, ReadOnlyAdmin, UsdAdminMixin, UsdField
from synstar.admin_shared import usd_column as _usd
from synstar.errors import SynstarError
from synstar.money import format_usd
from wallet.models import (
    Account,
    AlertSettings,
    AutoTopUp,
    AutoTopUpAttempt,
    BonusRule,
    CodeBatch,
    CreditNote,
    Entry,
    Hold,
    InvoiceLine,
    InvoiceRequest,
    PaymentMethod,
    Redemption,
    RedemptionCode,
    Refund,
    RefundRequest,
    TopUpOrder,
    Transaction,
    WebhookDelivery,
    WebhookEvent,
)
from wallet.providers.base import ProviderError
from wallet.selectors.documents import document_number, invoice_pdf
from wallet.services.autotopup import autotopup_turn_off
from wallet.services.invoices import invoice_issue, invoice_reject
from wallet.services.ledger import adjustment_create
from wallet.services.redemptions import batch_generate
from wallet.services.refund_requests import refund_request_approve, refund_request_reject
from wallet.services.refunds import order_refund
from wallet.services.webhooks import webhook_events_requeue


@admin.register(Account)
class AccountAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("balance", "held", "consumed")
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
    list_display = ["id", "created_at", "kind", "description", "user_reason", "actor", "idempotency_key"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "description", "reason", "user_reason", "entries__account__user__email"]
    inlines = [EntryInline]
    list_select_related = ["actor"]
    show_full_result_count = False


@admin.register(Entry)
class EntryAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("amount",)
    list_display = ["id", "transaction", "account", "amount_usd"]
    search_fields = ["account__code", "account__user__email"]
    list_select_related = ["transaction", "account"]
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)


@admin.register(Hold)
class HoldAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("amount", "settled_amount")
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
    amount = UsdField(
        allow_negative=True, allow_zero=False, label=_("Amount (USD)"),
        help_text=_('Signed: "25.00" credits, "-5.00" debits (never below the available balance).'),
    )
    user_reason = forms.CharField(
        required=False, max_length=255, label=_("Reason shown to the user"),
        help_text=_("Appears in the user's balance history, e.g. “Credit for the outage on 3 May”. "
                    "Empty: the row just says “Adjustment”."),
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label=_("Internal note"),
                             help_text=_("For operators only; recorded with your name, never shown to the user."))
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


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
                        user_reason=form.cleaned_data["user_reason"],
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
class BonusRuleAdmin(UsdAdminMixin, admin.ModelAdmin):
    usd_fields = ("amount", "bonus_fixed")
    usd_positive = ("amount",)
    usd_help = {"amount": _("The top-up amount in dollars, e.g. 100.00 (for 100 dollars)."),
                "bonus_fixed": _("Bonus credit added, in dollars, e.g. 3.00; or 0 and a percent below.")}
    list_display = ["__str__", "match", "amount_usd", "bonus_fixed_usd", "bonus_percent", "is_active"]
    list_editable = ["is_active"]

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Fixed bonus")
    def bonus_fixed_usd(self, obj):
        return _usd(obj.bonus_fixed)


class PaymentMethodForm(forms.ModelForm):
    countries = CountryListField(label=_("Countries"))

    class Meta:
        model = PaymentMethod
        fields = "__all__"


def _countries_column(codes) -> str:
    return ", ".join(codes) if codes else str(_("every country"))


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    form = PaymentMethodForm
    list_display = ["code", "name", "provider", "provider_method", "countries_display", "is_enabled", "sort_order"]
    list_editable = ["is_enabled", "sort_order"]

    @admin.display(description=_("Countries"))
    def countries_display(self, obj):
        return _countries_column(obj.countries)


_REFUND_MONEY = ("requested", "base_removed", "bonus_removed", "shortfall", "base_restored", "bonus_restored")


class RefundInline(UsdAdminMixin, admin.TabularInline):
    usd_fields = _REFUND_MONEY
    model = Refund
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "source", "status", "base_removed", "bonus_removed", "shortfall", "base_restored",
                                "bonus_restored", "provider_refund_id", "actor", "reason", "failure_reason")

    def has_add_permission(self, request, obj=None):
        return False


class RefundForm(forms.Form):
    amount = UsdField(required=False, allow_zero=False, label=_("Amount (USD)"),
                      help_text=_("Base credits to refund, e.g. 20.00; empty: as much as is still available"))
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


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


class OrderMoneyColumns:
    """The order's amount and bonus in dollars, for the order lists (all orders, auto top-up attempts)."""

    @admin.display(description="Amount", ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description="Bonus")
    def bonus_usd(self, obj):
        return _usd(obj.bonus)


@admin.register(TopUpOrder)
class TopUpOrderAdmin(OrderMoneyColumns, UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("amount", "bonus", "refunded_amount", "cash_refunded", "bonus_clawed", "refund_seen", "refund_watermark")
    list_display = ["order_no", "user", "method", "provider", "amount_usd", "bonus_usd", "status", "refunded_usd", "created_at"]
    list_filter = ["status", "provider", "method", "source"]
    search_fields = ["order_no", "user__email", "checkout_id", "payment_id"]
    list_select_related = ["user", "method"]
    inlines = [RefundInline]
    actions = [refund_action]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list (and its actions) but no editing of orders


    @admin.display(description="Refunded")
    def refunded_usd(self, obj):
        return _usd(obj.cash_refunded)


@admin.register(Refund)
class RefundAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = _REFUND_MONEY
    list_display = ["order", "source", "status", "requested_usd", "base_removed_usd", "bonus_removed_usd", "shortfall_usd",
                    "base_restored_usd", "actor", "created_at"]
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
    value = UsdField(allow_zero=False, label=_("Value (USD)"), help_text=_("Credited per redemption, e.g. 5.00"))
    allowed_countries = CountryListField(label=_("Allowed countries"))
    submission_key = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = CodeBatch
        fields = ["campaign", "value", "count", "expires_at", "max_uses", "per_account_limit", "new_accounts_only",
                  "no_topup_only", "allowed_users", "allowed_countries", "is_promotional"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["submission_key"].initial = uuid.uuid4().hex

    def clean_count(self):
        count = self.cleaned_data["count"]
        if not 1 <= count <= 100_000:
            raise forms.ValidationError(_("A batch has 1 to 100,000 codes."))
        return count


# The generated codes wait in the operator's session until the one download; this submission key (cache, atomic
# add) stops a second submit of the same add form (double click, back button, refresh) from generating again.
_CSV_SESSION_KEY = "codebatch-csv-{pk}"
_SUBMIT_CACHE_KEY = "codebatch-submit:{key}"
_SUBMIT_TTL = 24 * 3600


@admin.register(CodeBatch)
class CodeBatchAdmin(UsdAdminMixin, admin.ModelAdmin):
    """Adding a batch generates its codes, then redirects to a confirmation page with the one CSV download."""

    form = CodeBatchForm
    usd_fields = ("value",)
    usd_positive = ("value",)
    list_display = ["__str__", "campaign", "value_usd", "count", "max_uses", "per_account_limit", "countries_display",
                    "expires_at", "is_disabled", "created_at"]
    list_filter = ["is_promotional", "is_disabled"]
    search_fields = ["campaign"]
    filter_horizontal = ["allowed_users"]
    readonly_fields = ["campaign", "value", "count", "expires_at", "max_uses", "per_account_limit", "new_accounts_only",
                       "no_topup_only", "countries_display", "is_promotional", "created_by", "created_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.modelform_factory(CodeBatch, fields=["is_disabled"])
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return super().get_readonly_fields(request, obj) if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*CodeBatchForm._meta.fields, "submission_key"]  # type: ignore[misc]
        return [*self.readonly_fields, "is_disabled"]

    @admin.display(description=_("Allowed countries"))
    def countries_display(self, obj):
        return _countries_column(obj.allowed_countries)

    def get_urls(self):
        urls = [
            path("<int:pk>/generated/", self.admin_site.admin_view(self.generated_view), name="wallet_codebatch_generated"),
            path("<int:pk>/generated/codes.csv", self.admin_site.admin_view(self.download_view),
                 name="wallet_codebatch_download"),
        ]
        return urls + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        key = request.POST.get("submission_key", "") if request.method == "POST" else ""
        if key:
            if not cache.add(_SUBMIT_CACHE_KEY.format(key=key[:64]), 0, _SUBMIT_TTL):
                earlier = cache.get(_SUBMIT_CACHE_KEY.format(key=key[:64]))
                self.message_user(request, _("This form was already submitted; no second batch was generated."),
                                  messages.WARNING)
                if earlier:
                    return HttpResponseRedirect(reverse("admin:wallet_codebatch_generated", args=[earlier]))
                return HttpResponseRedirect(reverse("admin:wallet_codebatch_changelist"))
        response = super().add_view(request, form_url, extra_context)
        if key and getattr(request, "_generated_codes", None) is None:
            cache.delete(_SUBMIT_CACHE_KEY.format(key=key[:64]))  # the form had errors: it may be sent again
        return response

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        d = form.cleaned_data
        batch, csv_text = batch_generate(
            campaign=d["campaign"], value=d["value"], count=d["count"], created_by=request.user,
            expires_at=d["expires_at"], max_uses=d["max_uses"], per_account_limit=d["per_account_limit"],
            new_accounts_only=d["new_accounts_only"], no_topup_only=d["no_topup_only"],
            allowed_users=d["allowed_users"], allowed_countries=d["allowed_countries"] or [],
            is_promotional=d["is_promotional"],
        )
        obj.pk = batch.pk
        request._generated_codes = (batch, csv_text)
        request.session[_CSV_SESSION_KEY.format(pk=batch.pk)] = csv_text
        if d.get("submission_key"):
            cache.set(_SUBMIT_CACHE_KEY.format(key=d["submission_key"][:64]), batch.pk, _SUBMIT_TTL)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        # Post/Redirect/Get: the add form is not left filled in, and refreshing the next page generates nothing.
        return HttpResponseRedirect(reverse("admin:wallet_codebatch_generated", args=[obj.pk]))

    def generated_view(self, request, pk):
        batch = get_object_or_404(CodeBatch, pk=pk)
        if not self.has_view_permission(request, batch):
            return HttpResponseRedirect(reverse("admin:index"))
        return TemplateResponse(request, "admin/codebatch_generated.html", {
            **self.admin_site.each_context(request),
            "title": _("Codes generated"),
            "opts": self.model._meta,
            "batch": batch,
            "value": _usd(batch.value),
            "countries": _countries_column(batch.allowed_countries),
            "downloadable": _CSV_SESSION_KEY.format(pk=batch.pk) in request.session,
        })

    def download_view(self, request, pk):
        csv_text = request.session.pop(_CSV_SESSION_KEY.format(pk=pk), None)
        if csv_text is None:
            self.message_user(request, _("The codes of this batch were already downloaded; they are not kept anywhere. "
                                         "If the file is lost, disable the batch and generate a new one."),
                              messages.ERROR)
            return HttpResponseRedirect(reverse("admin:wallet_codebatch_generated", args=[pk]))
        response = HttpResponse(csv_text, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="codes-batch-{pk}.csv"'
        response["Cache-Control"] = "no-store"
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
class RedemptionAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("amount",)
    list_display = ["created_at", "user", "code", "amount_usd", "ip"]
    search_fields = ["user__email"]
    list_select_related = ["user", "code"]


# --- invoice requests and refund requests (issue 13) -----------------------------------------------


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason (the user reads it)"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


def _reject_with_reason(modeladmin, request, queryset, *, action: str, title, reject) -> HttpResponse | None:
    """An intermediate page asks for the reason, then `reject(request_id=..., actor=..., reason=...)` for each."""
    if "apply" in request.POST:
        form = RejectForm(request.POST)
        if form.is_valid():
            for obj in queryset:
                try:
                    reject(request_id=obj.pk, actor=request.user, reason=form.cleaned_data["reason"])
                except SynstarError as exc:
                    modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
                else:
                    modeladmin.message_user(request, _("%(obj)s: rejected; the user is emailed.") % {"obj": obj})
            return None
    else:
        form = RejectForm()
    return render(request, "admin/reject_requests.html", {
        **modeladmin.admin_site.each_context(request), "title": title, "form": form, "objects": queryset, "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "opts": modeladmin.model._meta,
    })


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ("order", "amount_usd", "active")

    @admin.display(description=_("Amount"))
    def amount_usd(self, obj):
        return _usd(obj.amount)

    def has_add_permission(self, request, obj=None):
        return False


class CreditNoteInline(admin.TabularInline):
    model = CreditNote
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "order", "amount_usd", "created_at")

    @admin.display(description=_("Amount"))
    def amount_usd(self, obj):
        return _usd(obj.amount)

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description=_("Issue the selected invoices (numbers allocated in order, without gaps)"))
def invoice_issue_action(modeladmin, request, queryset):
    for obj in queryset.order_by("created_at"):
        try:
            issued = invoice_issue(request_id=obj.pk, actor=request.user)
        except SynstarError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, _("%(obj)s: invoice %(number)s issued for %(amount)s.") % {
                "obj": obj, "number": document_number(issued), "amount": _usd(issued.invoiced_amount)})


@admin.action(description=_("Reject the selected invoice requests (with a reason)"))
def invoice_reject_action(modeladmin, request, queryset):
    return _reject_with_reason(modeladmin, request, queryset, action="invoice_reject_action", title=_("Reject invoice requests"),
                               reject=invoice_reject)


@admin.register(InvoiceRequest)
class InvoiceRequestAdmin(ReadOnlyAdmin):
    """The queue: filter by status (Requested first by default order: oldest first), issue or reject."""

    list_display = ["id", "created_at", "user", "company_name", "tax_id", "amount_usd", "delivery", "status", "invoice_number",
                    "invoiced_usd"]
    list_filter = ["status", "delivery"]
    search_fields = ["company_name", "tax_id", "user__email", "lines__order__order_no"]
    list_select_related = ["user"]
    ordering = ["status", "created_at"]
    inlines = [InvoiceLineInline, CreditNoteInline]
    actions = [invoice_issue_action, invoice_reject_action]
    readonly_fields = ["user", "company_name", "tax_id", "delivery", "email", "mailing_address", "amount_usd", "status",
                       "invoice_number", "invoiced_usd", "reject_reason", "decided_by", "created_at", "decided_at"]
    exclude = ["amount", "number", "invoiced_amount"]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list and its actions; requests change only through the services

    def get_urls(self):
        pdf = path("<int:request_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name="wallet_invoicerequest_pdf")
        return [pdf, *super().get_urls()]

    def pdf_view(self, request, request_id: int):
        """The issued invoice's PDF, for printing a paper invoice or answering the customer."""
        invoice = InvoiceRequest.objects.filter(pk=request_id, status=InvoiceRequest.Status.ISSUED).first()
        if invoice is None:
            raise Http404(_("No such invoice."))
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="invoice-{document_number(invoice)}.pdf"'
        return response

    @admin.display(description=_("Amount asked"), ordering="amount")
    def amount_usd(self, obj):
        return _usd(obj.amount)

    @admin.display(description=_("Invoiced"))
    def invoiced_usd(self, obj):
        return _usd(obj.invoiced_amount) if obj.status == InvoiceRequest.Status.ISSUED else "—"

    @admin.display(description=_("Number"), ordering="number")
    def invoice_number(self, obj):
        if obj.status != InvoiceRequest.Status.ISSUED:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:wallet_invoicerequest_pdf", args=[obj.pk]), document_number(obj))


class OverdueFilter(admin.SimpleListFilter):
    title = _("decision target")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", _("Overdue (still requested after the target)")), ("no", _("Within the target"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(status=RefundRequest.Status.REQUESTED, due_at__lt=now)
        if self.value() == "no":
            return queryset.filter(status=RefundRequest.Status.REQUESTED, due_at__gte=now)
        return queryset


@admin.action(description=_("Approve the selected refund requests (the refund service decides what is still refundable)"))
def refund_request_approve_action(modeladmin, request, queryset):
    for obj in queryset.order_by("created_at"):
        try:
            result = refund_request_approve(request_id=obj.pk, actor=request.user)
        except SynstarError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            continue
        if result.status == RefundRequest.Status.APPROVED and result.refund is not None:
            modeladmin.message_user(request, _("%(obj)s: approved; %(cash)s refunded, %(bonus)s bonus clawed back (%(status)s).") % {
                "obj": obj, "cash": _usd(result.refund.base_removed), "bonus": _usd(result.refund.bonus_removed),
                "status": result.refund.get_status_display().lower()})
        else:
            modeladmin.message_user(request, f"{obj}: {result.get_status_display()} {result.reject_reason}".strip(), messages.WARNING)


@admin.action(description=_("Reject the selected refund requests (with a reason)"))
def refund_request_reject_action(modeladmin, request, queryset):
    return _reject_with_reason(modeladmin, request, queryset, action="refund_request_reject_action", title=_("Reject refund requests"),
                               reject=refund_request_reject)


@admin.register(RefundRequest)
class RefundRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "due_at", "user", "order", "quoted_usd", "status", "refunded_usd", "decided_by"]
    list_filter = [OverdueFilter, "status"]
    search_fields = ["user__email", "order__order_no"]
    list_select_related = ["user", "order", "refund", "decided_by"]
    ordering = ["status", "due_at"]
    actions = [refund_request_approve_action, refund_request_reject_action]
    readonly_fields = ["user", "order", "reason", "status", "quoted_usd", "refund", "refunded_usd", "reject_reason", "decided_by",
                       "created_at", "due_at", "decided_at"]
    exclude = ["quoted"]

    def has_change_permission(self, request, obj=None):
        return obj is None

    @admin.display(description=_("Refundable when asked"), ordering="quoted")
    def quoted_usd(self, obj):
        return _usd(obj.quoted)

    @admin.display(description=_("Refunded"))
    def refunded_usd(self, obj):
        return _usd(obj.refund.base_removed) if obj.refund_id else "—"


# --- auto top-up ----------------------------------------------------------------------------------


@admin.action(description="Turn auto top-up off for the selected users")
def autotopup_off_action(modeladmin, request, queryset):
    count = autotopup_turn_off(user_ids=queryset.values_list("user_id", flat=True), reason="Turned off by support.")
    modeladmin.message_user(request, f"Auto top-up turned off for {count} user(s).")


@admin.register(AutoTopUp)
class AutoTopUpAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("threshold", "amount", "daily_cap")
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
class AutoTopUpAttemptAdmin(OrderMoneyColumns, UsdAdminMixin, ReadOnlyAdmin):
    """The auto top-up orders (off-session charges of saved cards), with the provider's answer."""

    usd_fields = ("amount", "bonus")

    list_display = ["order_no", "user", "amount_usd", "bonus_usd", "status", "failure_reason", "provider_error", "payment_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["order_no", "user__email", "payment_id"]
    list_select_related = ["user"]
    readonly_fields = fields = ("order_no", "user", "amount", "bonus", "status", "payment_id", "failure_reason", "provider_error",
                                "created_at", "completed_at", "closed_at")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(source="auto")


# --- alerts (h-alerts) ---------------------------------------------------------------------------------


@admin.register(AlertSettings)
class AlertSettingsAdmin(ReadOnlyAdmin):
    """Users' alert settings; the webhook secret is never shown (only whether one is set)."""

    list_display = ("user", "threshold", "low_balance_alerted", "webhook_url", "has_secret", "updated_at")
    list_filter = ("low_balance_alerted",)
    search_fields = ("user__email", "webhook_url")
    fields = ("user", "threshold", "low_balance_alerted", "low_balance_alerted_at", "webhook_url", "has_secret", "updated_at")
    readonly_fields = fields

    @admin.display(description=_("Low-balance threshold"))
    def threshold(self, obj):
        return _("default") if obj.low_balance_threshold is None else _usd(obj.low_balance_threshold)

    @admin.display(boolean=True, description=_("Secret set"))
    def has_secret(self, obj):
        return bool(obj.webhook_secret)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "event_type", "user", "status", "attempts", "response_status", "created_at", "delivered_at")
    list_filter = ("status", "event_type")
    search_fields = ("event_id", "user__email", "url")
    readonly_fields = ("user", "event_id", "event_type", "url", "payload", "status", "attempts", "response_status",
                       "last_error", "created_at", "last_attempt_at", "delivered_at")
