import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synstar.settings")

app = Celery("synstar")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

import synstar.logging  # noqa: E402,F401  one log line per task, with its id (signal handlers)
