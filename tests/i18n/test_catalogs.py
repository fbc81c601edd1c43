"""Every string a user reads is marked for translation, and the Simplified Chinese catalog has all of them.

- Templates: every template of the project is parsed (Django's lexer, then an HTML parser); what remains
  after tags, comments, `{% translate %}` / `{% blocktranslate %}` and variables must not hold a human word.
- The catalog: `makemessages` extracts the marked strings (templates and Python) into a temporary
  directory; each must be in locale/zh_Hans/LC_MESSAGES/django.po, translated, not fuzzy, with the same
  placeholders.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
from django.core.management import call_command
from django.template.base import Lexer, TokenType

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
TEMPLATE_DIRS = [ROOT / "templates", *sorted(ROOT.glob("*/templates")), *sorted(ROOT.glob("*/*/templates"))]
SOURCE_DIRS = ["synstar", "wallet", "billing", "referrals", "templates"]

# Words that read the same in every language: the product, currencies, formats, placeholders of codes.
ALLOWED_WORDS = {"SynStar", "USD", "CNY", "CSV", "API", "HTTP", "UTC", "JSON", "URL", "XXXX", "sk", "gen", "x"}
# Attributes a user reads (tooltips, placeholders, button values, confirmations, accessible names).
HUMAN_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "hx-confirm", "data-confirm", "data-label", "value"}
# A variable's literal default is text too ({{ x|default:"Not set" }}): it must be _("...").
LITERAL_DEFAULT = re.compile(r"""\|default(?:_if_none)?:(["'])(.*?)\1""")
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
HOLE = "\x00"  # stands where a tag or variable was


def templates() -> list[Path]:
    return sorted(p for d in TEMPLATE_DIRS if d.is_dir() for p in d.rglob("*.html"))


def _skeleton(source: str) -> tuple[str, list[str]]:
    """The template's HTML with every Django tag, variable, comment and translated block replaced by a hole,
    and the problems found in the Django tags themselves."""
    parts, problems = [], []
    skip_until: str | None = None
    for token in Lexer(source).tokenize():
        if skip_until:
            if token.token_type == TokenType.BLOCK and token.contents.split()[0] == skip_until:
                skip_until = None
            continue
        if token.token_type == TokenType.TEXT:
            parts.append(token.contents)
            continue
        parts.append(HOLE)
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0]
            if name in ("blocktranslate", "blocktrans"):
                skip_until = "end" + name
            elif name == "comment":
                skip_until = "endcomment"
            elif name == "include" and " with " in token.contents:
                for literal in re.findall(r"""=(["'])(.*?)\1""", token.contents):
                    if _words(literal[1]) and (" " in literal[1] or literal[1][:1].isupper()):
                        problems.append(f"include with a literal text: {token.contents!r}")
        elif token.token_type == TokenType.VAR:
            for _quote, literal in LITERAL_DEFAULT.findall(token.contents):
                if _words(literal) and (" " in literal or literal[:1].isupper()):  # text, not an identifier
                    problems.append(f"literal default: {{{{ {token.contents} }}}}")
    return "".join(parts), problems


def _words(text: str) -> list[str]:
    return [w for w in WORD.findall(html.unescape(text)) if w not in ALLOWED_WORDS]


class _TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._raw: list[str] = []  # inside <script> or <style>: code, not text

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._raw.append(tag)
        attributes = dict(attrs)
        for name, value in attrs:
            if name not in HUMAN_ATTRIBUTES or not value:
                continue
            if name == "value" and not (tag == "input" and attributes.get("type") in ("submit", "button", "reset")):
                continue  # form values are data, not text (except on buttons)
            if _words(value.replace(HOLE, " ")):
                self.found.append(f'<{tag} {name}="{value.replace(HOLE, "…")}">')

    def handle_endtag(self, tag):
        if self._raw and tag == self._raw[-1]:
            self._raw.pop()

    def handle_data(self, data):
        if '="' in data:  # a tag whose name is template code (<{% if a %}a{% else %}button{% endif %} class="...">)
            data = re.sub(r'[\w-]+="[^"]*"|\b(a|button|div|span)\b', " ", data)
        if not self._raw and _words(data.replace(HOLE, " ")):
            self.found.append(data.replace(HOLE, "…").strip())


def unmarked_strings(source: str) -> list[str]:
    skeleton, problems = _skeleton(source)
    finder = _TextFinder()
    finder.feed(skeleton)
    finder.close()
    return problems + finder.found


def test_the_checker_finds_unmarked_text_and_accepts_marked_text():
    assert unmarked_strings('{% load i18n %}<p>Hello {{ name }}</p>') == ["Hello …"]
    assert unmarked_strings('<button title="Delete it">{% translate "Delete" %}</button>') == ['<button title="Delete it">']
    assert unmarked_strings('{{ user.country|default:"Not set" }}') == ['literal default: {{ user.country|default:"Not set" }}']
    assert unmarked_strings('<input type="submit" value="Apply">') == ['<input value="Apply">']
    assert unmarked_strings('<input type="hidden" name="action" value="refund_action">{{ where|default:"nav" }}') == []
    assert unmarked_strings('<{% if href %}a href="{{ href }}"{% else %}button{% endif %} class="btn">{{ label }}</a>') == []
    assert unmarked_strings('<td data-label="Amount">1</td>') == ['<td data-label="Amount">']
    marked = (
        '{% load i18n %}<h1>{% translate "Wallet" %}</h1><p title="{% translate "Hint" %}">{% blocktranslate with a=b %}Pay {{ a }}'
        '{% endblocktranslate %}</p><script>const x = "not text";</script>{# a comment #}<span>SynStar · USD $1.00 →</span>'
        '{% comment %}Old words{% endcomment %}<input type="text" value="{{ v }}" placeholder="XXXX-XXXX">'
    )
    assert unmarked_strings(marked) == []


@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_template_string_is_marked_for_translation(path):
    found = unmarked_strings(path.read_text())
    assert found == [], f"{path.relative_to(ROOT)} has text not marked for translation ({{% translate %}} / {{% blocktranslate %}}):\n" + "\n".join(found)


def _placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)[sd]|\{\w*\}", text))


@contextlib.contextmanager
def _cwd(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def test_catalog_has_every_marked_string_translated(tmp_path, settings):
    if not shutil.which("xgettext"):
        pytest.fail("makemessages needs GNU gettext's xgettext: `make test` installs it (tests/ensure_services.sh), or apt-get install gettext.")
    # makemessages writes next to the sources it finds: give it links to them in a temporary directory, and
    # the temporary directory as the only locale path, so the project's catalog is never touched.
    for name in SOURCE_DIRS:
        (tmp_path / name).symlink_to(ROOT / name)
    out = tmp_path / "extracted"
    settings.LOCALE_PATHS = [str(out)]
    with _cwd(tmp_path):
        call_command("makemessages", locale=["zh_Hans"], symlinks=True, no_location=True, verbosity=0,
                     ignore_patterns=["*/migrations/*"])
    extracted = polib.pofile(str(out / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    assert len(extracted) > 300, "makemessages found too little: is the extraction looking at the sources?"
    catalog = {(e.msgctxt, e.msgid): e for e in polib.pofile(str(CATALOG)) if not e.obsolete}

    missing, untranslated, fuzzy, placeholders = [], [], [], []
    for entry in extracted:
        ours = catalog.get((entry.msgctxt, entry.msgid))
        if ours is None:
            missing.append(entry.msgid)
        elif ours.fuzzy:
            fuzzy.append(entry.msgid)
        elif ours.msgid_plural:  # Chinese has one form (nplurals=1): msgstr[0] stands for every count
            forms = [text for _n, text in sorted(ours.msgstr_plural.items())]
            if not forms or not all(text.strip() for text in forms):
                untranslated.append(entry.msgid)
            elif any(_placeholders(ours.msgid_plural) != _placeholders(text) for text in forms):
                placeholders.append(entry.msgid)
        elif not ours.msgstr.strip():
            untranslated.append(entry.msgid)
        elif _placeholders(ours.msgid) != _placeholders(ours.msgstr):
            placeholders.append(entry.msgid)
    problems = {"missing": missing, "untranslated": untranslated, "fuzzy": fuzzy, "placeholders differ": placeholders}
    assert not any(problems.values()), (
        "locale/zh_Hans/LC_MESSAGES/django.po is behind the code. Run `manage.py makemessages -l zh_Hans --no-location` "
        "and translate:\n" + "\n".join(f"{kind}: {msgid!r}" for kind, ids in problems.items() for msgid in ids)
    )


def test_catalog_compiles_in_pure_python_and_translates(tmp_path):
    """`make run` compiles with polib (no GNU gettext); the compiled catalog is what Django reads."""
    from django.utils import translation

    from synstar.management.commands.compile_catalogs import compile_catalog

    copy = tmp_path / "django.po"
    shutil.copy(CATALOG, copy)
    mo = compile_catalog(copy)
    assert mo.stat().st_size > 10_000
    with translation.override("zh-hans"):
        assert translation.gettext("Wallet") == "钱包"
        assert translation.gettext("Top up") == "充值"
