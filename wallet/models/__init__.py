"""The wallet's tables, one module per domain; Django finds them here."""

from wallet.models.alerts import AlertSettings, WebhookDelivery
from wallet.models.autotopup import AutoTopUp, AutoTopUpAttempt
from wallet.models.invoices import CreditNote, DocumentCounter, InvoiceLine, InvoiceRequest
from wallet.models.ledger import Account, Entry, Hold, Lease, SystemAccount, Transaction
from wallet.models.redemptions import CodeBatch, Redemption, RedemptionCode
from wallet.models.refund_requests import RefundRequest
from wallet.models.topups import BonusRule, PaymentMethod, Refund, TopUpOrder
from wallet.models.webhooks import WebhookEvent

__all__ = [
    "CreditNote", "DocumentCounter", "InvoiceLine", "InvoiceRequest", "RefundRequest",
    "Account", "AlertSettings", "AutoTopUp", "AutoTopUpAttempt", "BonusRule", "CodeBatch", "Entry", "Hold", "Lease", "PaymentMethod", "Redemption", "RedemptionCode", "Refund",
    "SystemAccount", "TopUpOrder", "Transaction", "WebhookDelivery", "WebhookEvent",
]
