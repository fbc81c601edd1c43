"""What every app's admin shares: the read-only base for append-only tables, money in USD (the form field,
the list and detail columns) and the widgets for JSON lists (countries, model names, IP/CIDR ranges).

Money is stored as integer nano-dollars; operators type and read dollars. `UsdAdminMixin` turns the
nano fields an admin names in `usd_fields` into `UsdField` (a decimal USD field backed by
`synstar.money.parse_usd`) where they are editable, and into `<field>_usd` columns (`usd_column`) wherever
they are shown read-only: the change list, view-only pages and read-only fields.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from synstar.errors import SynstarError
from synstar.money import format_usd, parse_usd


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


# --- money --------------------------------------------------------------------------------------------


_GROUPED = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d*)?$")


class UsdInput(forms.TextInput):
    """A text box for dollars: decimal keyboard on phones, "$" shown before it by the admin's help text."""

    def __init__(self, attrs=None):
        super().__init__({"inputmode": "decimal", "autocomplete": "off", "placeholder": "0.00", "size": 16, **(attrs or {})})


class UsdField(forms.Field):
    """A USD amount typed as a decimal ("1.99", "200", "0.000002"), cleaned to integer nanos.

    Shows stored nanos as their exact dollars. Anything that is not a USD amount (letters, more than nine
    decimals, a negative or zero amount where not allowed, beyond $1,000,000,000) is a form error naming
    what to type, never an exception. Empty is None (for nullable fields such as an unlimited quota).
    """

    widget = UsdInput
    default_error_messages = {"required": _("Enter an amount in USD, such as 25.00.")}

    def __init__(self, *, allow_negative: bool = False, allow_zero: bool = True, **kwargs: Any) -> None:
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero
        kwargs.pop("max_value", None)
        kwargs.pop("min_value", None)
        kwargs.pop("step_size", None)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return format_usd(value, places=None)
        return value

    def to_python(self, value):
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # already nanos (initial data)
        text = str(value).strip()
        if text.startswith("$"):
            text = text[1:].strip()
        elif text.startswith("-$"):
            text = "-" + text[2:].strip()
        if not text:
            return None
        if "," in text:
            # Thousands separators (1,000.50) are fine; a decimal comma (1,99) would mean 100 times more.
            if not _GROUPED.match(text):
                raise ValidationError(_("Use a dot for decimals, e.g. 1.99 (commas only between thousands)."),
                                      code="invalid_usd")
            text = text.replace(",", "")
        try:
            return parse_usd(text, allow_negative=self.allow_negative, allow_zero=self.allow_zero,
                             field=str(self.label or _("The amount")))
        except SynstarError as exc:
            raise ValidationError(exc.message, code="invalid_usd") from None

    def has_changed(self, initial, data):
        try:
            return self.to_python(initial) != self.to_python(data)
        except ValidationError:
            return True


def _usd_help(model_help: str) -> str:
    """The model's help text said "nanos ..." for developers; operators read dollars."""
    text = str(model_help or "")
    if text.startswith("nanos"):
        text = "USD" + text[len("nanos"):]
    return text or str(_("USD, e.g. 2.50"))


class UsdAdminMixin:
    """Money fields of an admin in dollars. Set `usd_fields` to the nano fields; `usd_positive` to those
    that must be above zero and `usd_signed` to those that may be negative (others: zero or more).

    Each `usd_fields` entry also gets a `<name>_usd` column for `list_display`; a money field that is read
    only here (in `readonly_fields`, or the whole page is view-only) is shown through that column.
    """

    usd_fields: tuple[str, ...] = ()
    usd_positive: tuple[str, ...] = ()
    usd_signed: tuple[str, ...] = ()
    usd_help: dict[str, Any] = {}  # help text (str or lazy) per field, where the model's (written for developers) does not do

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # a mixin in front of ModelAdmin / InlineModelAdmin
        for name in self.usd_fields:
            if not hasattr(self, f"{name}_usd"):
                setattr(self, f"{name}_usd", self._usd_display(name))

    def _usd_display(self, name: str) -> Callable[[Any], str]:
        field = self.model._meta.get_field(name)  # type: ignore[attr-defined]

        @admin.display(description=str(field.verbose_name).capitalize(), ordering=name)
        def show(obj):
            return usd_column(getattr(obj, name))

        return show

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in self.usd_fields:
            label = str(db_field.verbose_name).capitalize()
            return UsdField(
                required=not db_field.blank,
                allow_negative=db_field.name in self.usd_signed,
                allow_zero=db_field.name not in self.usd_positive,
                label=_("%(label)s (USD)") % {"label": label},
                help_text=self.usd_help.get(db_field.name) or _usd_help(db_field.help_text),
                initial=db_field.get_default() if db_field.has_default() else None,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]

    def _usd_view_only(self, request, obj) -> bool:
        return obj is not None and not self.has_change_permission(request, obj)  # type: ignore[attr-defined]

    def _usd_name(self, name):
        return f"{name}_usd" if isinstance(name, str) and name in self.usd_fields else name

    def get_readonly_fields(self, request, obj=None):
        base = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        names = [self._usd_name(n) for n in base]
        if self._usd_view_only(request, obj):
            names += [f"{n}_usd" for n in self.usd_fields if f"{n}_usd" not in names]
        return names

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        readonly = set(self.get_readonly_fields(request, obj))  # money shown read-only appears as `<name>_usd`

        def swap(name):
            if isinstance(name, (list, tuple)):
                return type(name)(swap(n) for n in name)
            return self._usd_name(name) if self._usd_name(name) in readonly else name

        seen: set = set()

        def once(names):
            out = []
            for n in names:
                n = swap(n)
                key = tuple(n) if isinstance(n, list) else n
                if key not in seen:
                    seen.add(key)
                    out.append(n)
            return out

        return [(title, {**opts, "fields": once(opts.get("fields", ()))}) for title, opts in fieldsets]


# --- lists that were JSON -----------------------------------------------------------------------------


class ListFilterWidget(FilteredSelectMultiple):
    """The admin's two-box filter, wrapped: its script prepends the boxes to the widget's parent, which would
    otherwise put them before the field's label."""

    def render(self, name, value, attrs=None, renderer=None):
        return format_html('<div class="related-widget-wrapper">{}</div>', super().render(name, value, attrs, renderer))


class ChoiceListField(forms.TypedMultipleChoiceField):
    """A JSON list of strings as a multi-select (the admin's two-box filter), cleaned to a sorted list."""

    def __init__(self, *, verbose_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", ListFilterWidget(verbose_name, is_stacked=False))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return list(value or []) if isinstance(value, (list, tuple)) else value

    def clean(self, value):
        return sorted(set(super().clean(value) or []))


class CountryListField(ChoiceListField):
    """Allowed countries (ISO 3166-1 alpha-2 codes, e.g. ["CN", "HK"]); none selected means every country."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", _("None selected: every country."))
        super().__init__(verbose_name=str(_("countries")), choices=lambda: list(countries), **kwargs)


class IpNetworkListField(forms.CharField):
    """IP addresses or CIDR ranges, one per line, stored as a sorted list of normalised networks.

    Empty means any IP. A line that is not an address or a range is an error that names the line.
    """

    widget = forms.Textarea

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", _("One IP address or CIDR range per line, e.g. 203.0.113.7 or 10.0.0.0/24. "
                                         "Empty: any IP."))
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "cols": 40, "spellcheck": "false"}))
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, (list, tuple)):
            value = "\n".join(str(v) for v in value)
        lines = [line.strip() for line in str(value or "").replace(",", "\n").splitlines()]
        networks, errors = set(), []
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                networks.add(ipaddress.ip_network(line, strict=False))
            except ValueError:
                errors.append(ValidationError(
                    _("Line %(number)s: “%(line)s” is not an IP address or CIDR range (such as 203.0.113.7 or "
                      "10.0.0.0/24)."),
                    code="invalid_ip", params={"number": number, "line": line[:60]},
                ))
        if errors:
            raise ValidationError(errors)
        return sorted({str(n) for n in networks})  # the order billing.services.tokens keeps

    def has_changed(self, initial, data):
        try:
            return self.to_python(initial) != self.to_python(data)
        except ValidationError:
            return True
