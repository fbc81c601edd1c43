"""The user admin: accounts with their balance, the balance adjustment action, status changes with a
reason, and onboarding for users added here. It spans accounts and wallet, so it lives above them."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import OuterRef, Subquery

from synstar.accounts.admin import StatusChangeInline, UserChangeForm, UserCreationForm
from synstar.accounts.models import User
from synstar.errors import SynstarError
from synstar.money import format_usd
from synstar.onboarding import user_save_from_admin
from wallet.admin import adjust_balance_action
from wallet.models import Account


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["-date_joined"]
    list_display = ["email", "country", "status", "review_reason", "balance_display", "is_staff", "date_joined"]
    list_filter = ["status", "review_reason", "is_staff", "country"]
    search_fields = ["email"]
    readonly_fields = ["balance_display", "held_display", "status_note", "last_login", "date_joined"]
    actions = [adjust_balance_action]
    inlines = [StatusChangeInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "country")}),
        ("Credit", {"fields": ("balance_display", "held_display")}),
        ("Status", {"fields": ("status", "review_reason", "status_change_note", "status_note")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "country", "usable_password", "password1", "password2")}),)

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj else []

    def get_queryset(self, request):
        main = Account.objects.filter(user=OuterRef("pk"), kind=Account.Kind.MAIN)
        return (
            super()
            .get_queryset(request)
            .annotate(main_balance=Subquery(main.values("balance")[:1]), main_held=Subquery(main.values("held")[:1]))
        )

    @admin.display(description="Balance", ordering="main_balance")
    def balance_display(self, obj):
        return f"${format_usd(getattr(obj, 'main_balance', None) or 0, grouping=True)}"

    @admin.display(description="Frozen (held)")
    def held_display(self, obj):
        return f"${format_usd(getattr(obj, 'main_held', None) or 0, grouping=True)}"

    def save_model(self, request, obj, form, change):
        status_changed = bool(change and {"status", "review_reason"} & set(form.changed_data))
        try:
            user_save_from_admin(
                user=obj, created=not change, actor=request.user,
                status_change=(obj.status, obj.review_reason, form.cleaned_data.get("status_change_note", "")) if status_changed else None,
            )
        except SynstarError as exc:
            messages.error(request, exc.message)
