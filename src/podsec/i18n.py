"""Messages in English and Russian (gettext domain ``podsec``).

The Russian catalog is compiled from ``po/ru/*.po`` into ``podsec/locale`` at build time.
The language follows ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG`` as gettext does. The
domain is also made the process default so click's own strings ("Usage:", "Options:") are
looked up in our catalog too.
"""

from __future__ import annotations

import gettext
from pathlib import Path

DOMAIN = "podsec"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_translation: gettext.NullTranslations = gettext.NullTranslations()


def setup() -> None:
    """(Re)load the catalog for the current environment; call again after changing LANG."""
    global _translation  # noqa: PLW0603 - one catalog per process, reloadable in tests
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
    _translation = gettext.translation(DOMAIN, str(LOCALE_DIR), fallback=True)


def _(message: str) -> str:
    """Translate ``message``; an untranslated message is returned unchanged."""
    return _translation.gettext(message)


setup()
