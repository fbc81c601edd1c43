"""The alert settings API (session only: managing alerts is an account action): the low-balance threshold,
the customer webhook (its secret is returned once, when generated), the test event and the delivery log."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import IsSession, MoneyField
from wallet.models import WebhookDelivery
from wallet.selectors.alerts import alert_settings_for, low_balance_state, webhook_deliveries
from wallet.services.alerts import alert_settings_update, webhook_test_send


class DeliverySerializer(serializers.Serializer):
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    response_status = serializers.IntegerField(allow_null=True, help_text="HTTP status of the last attempt")
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


def _settings_out(user, secret: str | None = None) -> dict:
    row = alert_settings_for(user=user)
    state = low_balance_state(user=user)
    out = {
        "threshold": None if row is None else row.low_balance_threshold,
        "effective_threshold": state.threshold,
        "available": state.available,
        "below_threshold": state.below,
        "webhook_url": row.webhook_url if row else "",
        "has_webhook_secret": bool(row and row.webhook_secret),
    }
    if secret:
        out["webhook_secret"] = secret
    return out


class AlertSettingsApi(APIView):
    permission_classes = [IsSession]

    class InputSerializer(serializers.Serializer):
        threshold = MoneyField(allow_null=True, allow_zero=True, required=False,
                               help_text="USD; null for the default (LOW_BALANCE_THRESHOLD_USD), 0 turns the alert off")
        webhook_url = serializers.CharField(max_length=500, allow_blank=True, required=False,
                                            help_text="https URL for signed events; empty removes the webhook")
        new_secret = serializers.BooleanField(required=False, default=False,
                                              help_text="Generate a new signing secret (returned once)")

    class OutputSerializer(serializers.Serializer):
        threshold = MoneyField(allow_null=True, help_text="The user's own threshold; null means the default")
        effective_threshold = MoneyField(allow_zero=True, help_text="The threshold in force; 0 means the alert is off")
        available = MoneyField(allow_negative=True)
        below_threshold = serializers.BooleanField()
        webhook_url = serializers.CharField()
        has_webhook_secret = serializers.BooleanField()
        webhook_secret = serializers.CharField(required=False, help_text="Only when just generated: store it now")

        def to_representation(self, instance):
            data = super().to_representation(instance)
            if instance["threshold"] is None:
                data["threshold"] = None
            return data

    @extend_schema(responses=OutputSerializer, summary="Alert settings")
    def get(self, request):
        return Response(self.OutputSerializer(_settings_out(request.user)).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer, summary="Change alert settings")
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        row = alert_settings_for(user=request.user)
        _row, secret = alert_settings_update(
            user=request.user,
            threshold=d["threshold"] if "threshold" in d else (row.low_balance_threshold if row else None),
            webhook_url=d["webhook_url"] if "webhook_url" in d else (row.webhook_url if row else ""),
            new_secret=d["new_secret"],
        )
        return Response(self.OutputSerializer(_settings_out(request.user, secret)).data)


class AlertTestApi(APIView):
    permission_classes = [IsSession]

    @extend_schema(request=None, responses={202: DeliverySerializer}, summary="Send a test event to the webhook")
    def post(self, request):
        delivery = webhook_test_send(user=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListApi(APIView):
    permission_classes = [IsSession]

    @extend_schema(responses=DeliverySerializer(many=True), summary="Webhook deliveries (the latest 50)")
    def get(self, request):
        return Response(DeliverySerializer(webhook_deliveries(user=request.user), many=True).data)
