"""Compile the translation catalogs (locale/*/LC_MESSAGES/*.po -> .mo) in pure Python (polib).

Django's `compilemessages` needs GNU gettext's msgfmt, which a fresh machine may not have; `make run`,
`make test` and a production build run this instead. Only catalogs newer than their .mo are written
(--force writes all); fuzzy entries are left out, as msgfmt does."""

from pathlib import Path

import polib  # type: ignore[import-untyped]
from django.conf import settings
from django.core.management.base import BaseCommand


def catalogs() -> list[Path]:
    return sorted(po for base in settings.LOCALE_PATHS for po in Path(base).glob("*/LC_MESSAGES/*.po"))


def compile_catalog(po_path: Path) -> Path:
    catalog = polib.pofile(str(po_path))
    for entry in catalog:
        if entry.fuzzy:
            entry.msgstr = ""
            entry.msgstr_plural = {key: "" for key in entry.msgstr_plural}
    mo_path = po_path.with_suffix(".mo")
    tmp = mo_path.with_suffix(".mo.tmp")
    catalog.save_as_mofile(str(tmp))
    tmp.replace(mo_path)  # atomic: a running server never reads half a file
    return mo_path


def compile_stale(*, force: bool = False) -> list[Path]:
    written = []
    for po in catalogs():
        mo = po.with_suffix(".mo")
        if force or not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            written.append(compile_catalog(po))
    return written


class Command(BaseCommand):
    help = "Compile the translation catalogs (.po -> .mo) without GNU gettext."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Write every .mo, even if it is newer than its .po.")

    def handle(self, *args, force: bool = False, **options):
        for mo in compile_stale(force=force):
            self.stdout.write(f"compiled {mo.relative_to(settings.BASE_DIR)}")
