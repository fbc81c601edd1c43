"""Admin pieces of the accounts app: the user forms, the status history. The user admin itself, which
shows balances and onboards new users, is in synstar/admin.py (above the apps)."""

from django import forms
from django.contrib import admin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm

from synstar.accounts.models import User, UserStatusChange


class UserChangeForm(BaseUserChangeForm):
    status_change_note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason for the status change",
        help_text="Required when you change the status or review reason; recorded with your name.",
    )

    class Meta(BaseUserChangeForm.Meta):  # type: ignore[name-defined]  # the stubs do not declare the inner Meta
        model = User
        fields = "__all__"

    def clean(self):
        data = super().clean() or {}
        if self.instance.pk and {"status", "review_reason"} & set(self.changed_data):
            if not (data.get("status_change_note") or "").strip():
                self.add_error("status_change_note", "Say why the status changes.")
            if data.get("status") == User.Status.UNDER_REVIEW and not data.get("review_reason"):
                self.add_error("review_reason", "Under review needs a reason: payment, risk or compliance.")
        return data


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):  # type: ignore[name-defined]
        model = User
        fields = ("email", "country")


class StatusChangeInline(admin.TabularInline):
    model = UserStatusChange
    fk_name = "user"
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "old_status", "new_status", "review_reason", "note", "actor")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(UserStatusChange)
class UserStatusChangeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "old_status", "new_status", "review_reason", "actor"]
    list_filter = ["new_status", "review_reason"]
    search_fields = ["user__email", "note"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
