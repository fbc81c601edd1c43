from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "synstar.accounts"
    label = "accounts"
    verbose_name = "Accounts"
