"""Invite rewards: console pages, API, and the invite link (included by synstar/urls.py)."""

from django.urls import path

from referrals import apis, views

console_urlpatterns = [
    path("invite/", views.invite_page, name="invite"),
    path("invite/transfer/", views.transfer, name="referral-transfer"),
]

api_urlpatterns = [
    path("referrals", apis.ReferralApi.as_view(), name="referrals"),
    path("referrals/transfer", apis.ReferralTransferApi.as_view(), name="referral-transfer"),
]

root_urlpatterns = [
    path("r/<str:code>/", views.invite_landing, name="invite-landing"),
]
