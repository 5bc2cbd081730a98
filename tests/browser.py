"""The real browser of the browser tests: Debian's chromium driven by Python Playwright
(`playwright install` cannot download its own browsers here)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""chromium's flags for a headless run as root, with nothing reaching the network."""


def chromium_or_skip() -> str:
    """Debian's chromium for Playwright; skipped where missing, unless TUNESMITH_REQUIRE_BROWSER=1
    (the test setup that installs it) makes a missing browser a failure."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    reason = None
    if not Path(path).is_file():
        reason = (
            "Debian's chromium is not installed (apt-get install chromium): no /usr/bin/chromium"
        )
    elif importlib.util.find_spec("playwright") is None:
        reason = "Python Playwright is not installed (pip install playwright)"
    if reason is None:
        return path
    if os.environ.get("TUNESMITH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TUNESMITH_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)
