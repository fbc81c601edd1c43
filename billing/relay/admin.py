"""Admin for the relay: channels (with health and recent errors) and task-based requests.

Registered from billing/admin.py (Django looks for admin modules at the app's root only).
"""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing.models import Channel, ChannelModel, RelayTask
from billing.relay.channels import channel_succeeded
from synstar.admin_shared import ReadOnlyAdmin


class ChannelForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: sent upstream as a Bearer key and never shown again. Leave blank to keep the current key.",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "base_url", "api_key", "priority", "weight", "connect_timeout", "read_timeout", "is_enabled"]

    def clean_api_key(self):
        value = self.cleaned_data.get("api_key", "").strip()
        return value or (self.instance.api_key if self.instance.pk else "")

    def clean(self):
        data = super().clean() or {}
        if data.get("kind") == Channel.Kind.OPENAI and not data.get("base_url"):
            self.add_error("base_url", "An OpenAI-compatible channel needs its API root, e.g. https://api.openai.com/v1.")
        for name in ("connect_timeout", "read_timeout"):
            value = data.get(name)
            if value is not None and not 0.1 <= value <= 3600:
                self.add_error(name, "Enter a number of seconds from 0.1 to 3600.")
        return data


class ChannelModelInline(admin.TabularInline):
    model = ChannelModel
    extra = 1
    autocomplete_fields = ["model"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "is_enabled", "priority", "weight", "health", "model_count", "last_error_short", "last_success_at"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name", "base_url"]
    inlines = [ChannelModelInline]
    readonly_fields = ["health", "consecutive_failures", "open_until", "last_error", "last_error_at", "last_success_at", "recent_events"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "base_url", "api_key", "is_enabled"]}),
        ("Routing", {"fields": ["priority", "weight", "connect_timeout", "read_timeout"]}),
        ("Health", {"fields": ["health", "consecutive_failures", "open_until", "last_error", "last_error_at", "last_success_at", "recent_events"]}),
    ]
    actions = ["put_back_in_rotation"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("models")

    @admin.display(description="Health")
    def health(self, obj):
        if obj.pk is None:
            return "—"
        if obj.open_until and obj.open_until > timezone.now():
            return format_html('<b style="color:#b42318">Out of rotation</b> until {} UTC', f"{obj.open_until:%Y-%m-%d %H:%M:%S}")
        if obj.open_until:
            return format_html('<span style="color:#b54708">Waiting for a probe</span> ({} failures)', obj.consecutive_failures)
        if obj.consecutive_failures:
            return format_html('<span style="color:#b54708">Failing</span> ({} in a row)', obj.consecutive_failures)
        return format_html('<span style="color:#067647">In rotation</span>')

    @admin.display(description="Models")
    def model_count(self, obj):
        return "all (sandbox)" if obj.kind == Channel.Kind.SANDBOX else len(obj.models.all())

    @admin.display(description="Last error")
    def last_error_short(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.display(description="Recent events")
    def recent_events(self, obj):
        events = list(obj.events.all()[:15]) if obj.pk else []
        if not events:
            return "None"
        return format_html(
            "<ul style='margin:0;padding-left:1.2em'>{}</ul>",
            format_html_join("", "<li>{} · <b>{}</b> · {}</li>",
                             ((f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.get_kind_display(), e.message[:200]) for e in events)),
        )

    @admin.action(description="Put back in rotation now")
    def put_back_in_rotation(self, request, queryset):
        for channel in queryset:
            channel_succeeded(channel_id=channel.pk, how=f"Put back by {request.user}")
        messages.success(request, f"{queryset.count()} channel(s) back in rotation.")


@admin.register(RelayTask)
class RelayTaskAdmin(ReadOnlyAdmin):
    list_display = ["generation", "kind", "status", "progress", "channel", "polls", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["generation__public_id", "upstream_id"]
    list_select_related = ["generation", "channel"]
