"""`{{ token|budget_state }}`: a token's budget as of now (period used, remaining, next reset) for the tokens page."""

from django import template
from django.utils import timezone

from billing.selectors.budgets import BudgetState, token_budget

register = template.Library()


@register.filter
def budget_state(token) -> BudgetState:
    return token_budget(token=token, now=timezone.now())
