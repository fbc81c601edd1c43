import logging

from celery import shared_task

from wallet.selectors import ledger_problems

logger = logging.getLogger(__name__)


@shared_task
def ledger_check() -> int:
    """Periodic audit (beat): logs every broken ledger invariant at ERROR so operators are alerted."""
    problems = ledger_problems()
    for problem in problems:
        logger.error("ledger invariant broken: %s", problem)
    if not problems:
        logger.info("ledger check: OK")
    return len(problems)
