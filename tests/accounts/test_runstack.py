"""`manage.py runstack` from a fresh checkout (no `.celery/` folder) with a Redis broker: beat starts."""

import os
import signal
import subprocess
import time

from synstar.management.commands.runstack import Command


def test_runstack_prepares_beats_folder_and_beat_keeps_running(tmp_path, settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "run under `make test` (a Redis broker)"
    checkout = tmp_path / "fresh-checkout"
    settings.CELERY_BEAT_SCHEDULE_FILENAME = str(checkout / ".celery" / "beat-schedule")
    assert not (checkout / ".celery").exists()

    commands = Command().prepare(addr="127.0.0.1:0")
    assert (checkout / ".celery").is_dir()
    assert commands["beat"][-2:] == ["--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME]

    log = tmp_path / "beat.log"
    env = {**os.environ, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "DJANGO_SETTINGS_MODULE": "synstar.settings",
           # far-off schedules: beat must start, not fill the test broker with periodic tasks
           "METERING_SWEEP_SECONDS": "86400", "ORDER_RECONCILE_EVERY_SECONDS": "86400", "WEBHOOK_RETRY_EVERY_SECONDS": "86400"}
    with open(log, "wb") as out:
        beat = subprocess.Popen(commands["beat"], cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list((checkout / ".celery").glob("beat-schedule*")):
            assert beat.poll() is None, f"beat exited: {log.read_text()[-3000:]}"
            time.sleep(0.2)
        assert list((checkout / ".celery").glob("beat-schedule*")), log.read_text()[-3000:]
        time.sleep(2)
        assert beat.poll() is None, f"beat exited: {log.read_text()[-3000:]}"
    finally:
        if beat.poll() is None:
            os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=15)
