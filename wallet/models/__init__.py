"""The wallet's tables, one module per domain; Django finds them here."""

from wallet.models.ledger import Account, Entry, Hold, Lease, SystemAccount, Transaction
from wallet.models.redemptions import CodeBatch, Redemption, RedemptionCode
from wallet.models.topups import BonusRule, PaymentMethod, Refund, TopUpOrder
from wallet.models.webhooks import WebhookEvent

__all__ = [
    "Account", "BonusRule", "CodeBatch", "Entry", "Hold", "Lease", "PaymentMethod", "Redemption", "RedemptionCode", "Refund",
    "SystemAccount", "TopUpOrder", "Transaction", "WebhookEvent",
]
