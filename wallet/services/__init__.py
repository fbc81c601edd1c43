"""Writes, one module per domain: ledger (the one ledger writer), topups, refunds, webhooks, redemptions."""
