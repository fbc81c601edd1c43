import uuid

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from referrals.selectors import referral_stats
from referrals.services import active_rule, invite_code_for, referral_transfer
from synstar.api import CanReadAccount, IsSession, MoneyField


class ReferralApi(APIView):
    permission_classes = [CanReadAccount]

    class OutputSerializer(serializers.Serializer):
        invite_code = serializers.CharField()
        invite_link = serializers.CharField()
        proceeds = MoneyField(help_text="Proceeds to be used: not yet transferred")
        total_revenue = MoneyField()
        invited = serializers.IntegerField()
        min_transfer = MoneyField(allow_zero=True)

    @extend_schema(responses=OutputSerializer, summary="Invite rewards")
    def get(self, request):
        stats = referral_stats(user=request.user)
        code = invite_code_for(user=request.user)
        rule = active_rule()
        return Response(self.OutputSerializer({
            "invite_code": code.code, "invite_link": request.build_absolute_uri(reverse("invite-landing", args=[code.code])),
            "proceeds": stats.proceeds, "total_revenue": stats.total_revenue, "invited": stats.invited,
            "min_transfer": rule.min_transfer if rule else 0,
        }).data)


class ReferralTransferApi(APIView):
    permission_classes = [IsSession]

    class InputSerializer(serializers.Serializer):
        amount = MoneyField()
        idempotency_key = serializers.CharField(max_length=100, required=False)

    @extend_schema(request=InputSerializer, responses=ReferralApi.OutputSerializer, summary="Transfer proceeds to the balance")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        referral_transfer(user=request.user, amount=data.validated_data["amount"],
                          idempotency_key=data.validated_data.get("idempotency_key") or uuid.uuid4().hex)
        return ReferralApi().get(request)
