"""POST /api/v1/redemptions: redeem a code (session only)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import IsSession, MoneyField
from wallet.selectors.ledger import wallet_statistics
from wallet.services.redemptions import code_redeem
from wallet.views.redemptions import client_ip


class RedemptionCreateApi(APIView):
    permission_classes = [IsSession]  # redeeming is an account action, not an API token's

    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)

    class OutputSerializer(serializers.Serializer):
        added = MoneyField(source="amount")
        balance = MoneyField()
        campaign = serializers.CharField(source="code.batch.campaign")

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer}, summary="Redeem a code")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        redemption = code_redeem(user=request.user, raw_code=data.validated_data["code"], ip=client_ip(request))
        result = {"amount": redemption.amount, "code": redemption.code, "balance": wallet_statistics(user=request.user).balance}
        return Response(self.OutputSerializer(result).data, status=status.HTTP_201_CREATED)
