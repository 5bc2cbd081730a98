"""The languages of every page tunesmith writes (reports, tune and compare pages, the
annotation page): one gettext message catalogue per language, read with Babel.

English is the source language: the strings in the code and templates are the English
text (the msgids). `locale/<lang>/LC_MESSAGES/tunesmith.po` holds each other language;
`make messages` re-extracts the strings into `locale/tunesmith.pot` and merges them into
every catalogue, and a test fails when a catalogue misses a string or has a stale one.

Rendering picks the language for its duration:

    with language("ja"):
        html = render_html(build_context(run_dir))

and every `_("...")` in Python and `{{ _("...") }}` / `{% trans %}` in a template inside
it reads that language's catalogue. Outside any `language(...)` block it is English.
Numbers and dates go through `number()` / `date_time()` here, so they follow the locale.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from importlib import resources

from babel import Locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES: tuple[str, ...] = ("en", "ja")
"""The languages tunesmith writes pages in; the first is the source language."""
DOMAIN = "tunesmith"

_current: ContextVar[str] = ContextVar("tunesmith_language", default="en")


def check_language(code: str) -> str:
    """`code` when tunesmith has it, else a ValueError naming the choices."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; choose one of {', '.join(LANGUAGES)}")
    return code


@cache
def translations(code: str) -> gettext.NullTranslations:
    """The catalogue of language `code`, compiled in memory from its .po file (no compiled
    .mo files to keep in step); English is the identity."""
    check_language(code)
    if code == LANGUAGES[0]:
        return gettext.NullTranslations()
    po = resources.files("tunesmith").joinpath("locale", code, "LC_MESSAGES", f"{DOMAIN}.po")
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def current() -> str:
    """The language being written now."""
    return _current.get()


@contextmanager
def language(code: str) -> Iterator[str]:
    """Write in `code` inside the block (pages rendered in it, strings built in it)."""
    token = _current.set(check_language(code))
    try:
        yield code
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """`message` (English) in the current language."""
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form for `count`, in the current language."""
    return translations(current()).ngettext(singular, plural, count)


def locale() -> Locale:
    return Locale.parse(current())


def date_time(moment: datetime) -> str:
    """A date and time to the minute as the current locale writes them (2026年12月2日 15:04
    in ja, December 2, 2026 3:04 PM in en)."""
    code = current()
    return f"{format_date(moment, 'long', locale=code)} {format_time(moment, 'short', locale=code)}"


def N_(message: str) -> str:
    """Marks `message` for the catalogue without translating it yet: module-level tables of
    names (translated with `_()` where they are shown, inside `language(...)`)."""
    return message


def number(text: str) -> str:
    """A number already written the C way ('1,234.5', '0.25') with the current locale's
    group and decimal symbols; every number a page shows goes through here (en and ja write
    them the same, another locale may not)."""
    from babel.numbers import get_decimal_symbol, get_group_symbol

    code = current()
    group, decimal = get_group_symbol(code), get_decimal_symbol(code)
    if (group, decimal) == (",", "."):
        return text
    return text.translate({ord(","): "\0", ord("."): decimal}).replace("\0", group)
