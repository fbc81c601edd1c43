from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction

from synstar.accounts.services import user_signup_complete

INVITE_SESSION_KEY = "referrals.invite_code"


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=False)
        if commit:
            with transaction.atomic():
                user.save()
                user_signup_complete(user=user, invite_code=request.session.pop(INVITE_SESSION_KEY, "") if request else "")
        return user
