"""Webhook endpoints: check the signature on the raw body, store the event once, answer fast.
Processing happens in Celery (wallet.tasks.webhook_process_task)."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from synstar.errors import SynstarError, json_error
from wallet.services.webhooks import webhook_receive


def _receiver(provider: str):
    @csrf_exempt
    @require_POST
    def receive(request):
        try:
            event, created = webhook_receive(provider=provider, body=request.body, headers=request.headers)
        except SynstarError as exc:
            return json_error(exc)
        return JsonResponse({"received": True, "duplicate": not created, "status": event.status})

    receive.__name__ = f"{provider}_webhook"
    return receive


stripe_webhook = _receiver("stripe")
airwallex_webhook = _receiver("airwallex")
