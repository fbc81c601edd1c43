from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import CanReadAccount, MoneyField
from wallet.selectors.ledger import wallet_statistics


class WalletApi(APIView):
    permission_classes = [CanReadAccount]

    class OutputSerializer(serializers.Serializer):
        currency = serializers.CharField(default="USD")
        balance = MoneyField(help_text="Credits on the account, including frozen ones; negative when in debt.")
        held = MoneyField(help_text="Frozen by requests pending reconciliation.")
        available = MoneyField(help_text="balance - held: what new requests can use.")
        consumption = MoneyField(source="consumed", help_text="Total charged for usage, all time.")
        request_count = serializers.IntegerField()
        in_debt = serializers.BooleanField()
        debt = MoneyField()

    @extend_schema(operation_id="wallet_retrieve", responses=OutputSerializer, summary="Wallet statistics")
    def get(self, request):
        stats = wallet_statistics(user=request.user)
        return Response(self.OutputSerializer(stats).data)


class CreditsApi(APIView):
    """The account's balance, for a script to check before a batch.

    Auth: any sk- token (no "Read account" needed), or the console session."""

    class OutputSerializer(serializers.Serializer):
        currency = serializers.CharField(default="USD")
        balance = MoneyField(help_text="Credits on the account, including frozen ones; negative when in debt.")
        held = MoneyField(help_text="Frozen by requests pending reconciliation.")
        available = MoneyField(help_text="balance - held: what new requests can use.")
        in_debt = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, summary="The account's balance")
    def get(self, request):
        return Response(self.OutputSerializer(wallet_statistics(user=request.user)).data)
