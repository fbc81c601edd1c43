"""What every app's admin shares: the read-only base for append-only tables and the money column."""

from django.contrib import admin

from synstar.money import format_usd


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledgers, events and records are append-only: admins read them, services write them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def usd_column(nanos: int | None) -> str:
    """Money in an admin list or detail: exact USD with thousands separators; a dash for none."""
    return "—" if nanos is None else f"${format_usd(nanos, places=None, grouping=True)}"
