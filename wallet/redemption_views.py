from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import IsSession, MoneyField
from synstar.errors import SynstarError
from synstar.money import format_usd
from wallet.redemptions import code_redeem
from wallet.selectors import wallet_statistics


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@login_required
@require_POST
def redeem(request):
    try:
        redemption = code_redeem(user=request.user, raw_code=request.POST.get("code", ""), ip=client_ip(request))
        messages.success(request, f"Code redeemed: ${format_usd(redemption.amount)} added to your balance.")
    except SynstarError as exc:
        messages.error(request, exc.message)
    return redirect("console:wallet")


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
        redemption.balance = wallet_statistics(user=request.user).balance
        return Response(self.OutputSerializer(redemption).data, status=status.HTTP_201_CREATED)
