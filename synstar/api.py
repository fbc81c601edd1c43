"""Shared DRF pieces: the money field."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from synstar.money import InvalidAmount, format_usd, parse_usd


@extend_schema_field({"type": "string", "format": "decimal", "example": "12.50"})
class MoneyField(serializers.Field):
    """USD as an exact decimal string in JSON; integer nanos inside."""

    def __init__(self, *, allow_negative: bool = False, allow_zero: bool = False, **kwargs):
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_representation(self, value: int) -> str:
        return format_usd(value, places=None)

    def to_internal_value(self, data) -> int:
        try:
            return parse_usd(
                data, allow_negative=self.allow_negative, allow_zero=self.allow_zero, field=self.field_name or "amount"
            )
        except InvalidAmount as exc:
            raise serializers.ValidationError(exc.message) from None


