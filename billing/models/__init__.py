"""Billing's tables, one module per domain (DESIGN.md 5-6); Django finds them here."""

from billing.models.catalog import BillingTier, ModelPrice, TierModelRate
from billing.models.channels import Channel, ChannelEvent, ChannelModel, RelayTask
from billing.models.metering import Generation
from billing.models.tokens import ApiToken, BudgetPeriod, GatewayKey, TokenGroup
from billing.models.usage import UsageDay

__all__ = [
    "ApiToken", "BillingTier", "BudgetPeriod", "Channel", "ChannelEvent", "ChannelModel", "RelayTask", "GatewayKey", "Generation", "ModelPrice", "TierModelRate", "TokenGroup",
    "UsageDay",
]
