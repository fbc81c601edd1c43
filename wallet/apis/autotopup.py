"""Auto top-up through the API: read and change the rule, start saving a card (console session only: an
API token can neither charge a card nor change who is charged)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import IsSession, MoneyField
from wallet.selectors.autotopup import autotopup_overview
from wallet.services.autotopup import autotopup_update, card_setup_start


class AttemptSerializer(serializers.Serializer):
    order_no = serializers.CharField()
    amount = MoneyField()
    bonus = MoneyField()
    status = serializers.CharField()
    failure_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class AutoTopUpOutputSerializer(serializers.Serializer):
    available = serializers.BooleanField(help_text="Card payments through Stripe are configured.")
    enabled = serializers.BooleanField(source="setting.enabled")
    threshold = MoneyField(source="setting.threshold", help_text="Top up when the available balance falls below this.")
    amount = MoneyField(source="setting.amount", help_text="How much each auto top-up adds (before bonus).")
    daily_cap = MoneyField(source="setting.daily_cap", help_text="The most auto top-ups may charge per UTC day.")
    daily_cap_max = MoneyField(help_text="The highest daily cap allowed (AUTOTOPUP_DAILY_CAP_USD).")
    charged_today = MoneyField(help_text="Charged (or being charged) by auto top-ups since 00:00 UTC.")
    disabled_reason = serializers.CharField(source="setting.disabled_reason", help_text="Why it was turned off, if a charge failed.")
    has_card = serializers.BooleanField(source="setting.has_card")
    card_brand = serializers.CharField(source="setting.card_brand", help_text='e.g. "visa"; empty without a saved card.')
    card_last4 = serializers.CharField(source="setting.card_last4", help_text="The card's last four digits; empty without one.")
    card_exp_month = serializers.IntegerField(source="setting.card_exp_month", allow_null=True)
    card_exp_year = serializers.IntegerField(source="setting.card_exp_year", allow_null=True)
    attempts = AttemptSerializer(many=True)


class AutoTopUpApi(APIView):
    permission_classes = [IsSession]

    class InputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        threshold = MoneyField(help_text='USD, e.g. "10.00"')
        amount = MoneyField(help_text='USD, e.g. "50.00"')
        daily_cap = MoneyField(help_text='USD, e.g. "200.00"')

    @extend_schema(operation_id="autotopup_retrieve", responses=AutoTopUpOutputSerializer, summary="Auto top-up settings")
    def get(self, request):
        return Response(AutoTopUpOutputSerializer(autotopup_overview(user=request.user)).data)

    @extend_schema(operation_id="autotopup_update", request=InputSerializer, responses=AutoTopUpOutputSerializer,
                   summary="Change the auto top-up settings")
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        autotopup_update(user=request.user, **data.validated_data)
        return Response(AutoTopUpOutputSerializer(autotopup_overview(user=request.user)).data)


class AutoTopUpCardSetupApi(APIView):
    permission_classes = [IsSession]

    class OutputSerializer(serializers.Serializer):
        checkout_url = serializers.CharField(help_text="Stripe Checkout (setup mode): send the user there to save a card.")

    @extend_schema(operation_id="autotopup_card_setup", request=None, responses={201: OutputSerializer},
                   summary="Start saving a card for auto top-up")
    def post(self, request):
        url = card_setup_start(user=request.user, base_url=request.build_absolute_uri("/")[:-1])
        return Response(self.OutputSerializer({"checkout_url": url}).data, status=status.HTTP_201_CREATED)
