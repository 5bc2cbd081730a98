"""Pictures render any script: Japanese class names are drawn with the CJK font that `make
setup` installs, glyph by glyph after DejaVu Sans, and never as the missing-glyph box."""

from __future__ import annotations

import base64
import logging
import warnings
from collections.abc import Iterator

import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager

from tunesmith.report import plots

NAMES = ["配送", "返品", "請求書", "解約"]
MATRIX = [[5, 1, 0, 0], [0, 4, 1, 0], [0, 0, 6, 0], [1, 0, 0, 3]]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fresh_fonts() -> Iterator[None]:
    """font_family() looked up anew inside the test and again after it."""
    plots.font_family.cache_clear()
    yield
    plots.font_family.cache_clear()


def _missing_glyphs(draw) -> tuple[str | None, list[str]]:
    """What `draw()` returned and matplotlib's missing-glyph warnings while it drew."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picture = draw()
    return picture, [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_the_cjk_font_package_is_installed() -> None:
    path = plots.cjk_font_path()
    assert path is not None, f"run `make setup`: it installs {plots.CJK_FONT_PACKAGE}"
    assert path.name == plots.CJK_FONT_FILE


def test_japanese_class_names_have_a_glyph_in_the_font_drawing_them(fresh_fonts) -> None:
    family = plots.font_family()
    assert family[0] == "DejaVu Sans" and len(family) == 2  # Latin first, then the CJK font
    files = [
        font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
        for name in family
    ]
    cmaps = [TTFont(path, fontNumber=0).getBestCmap() for path in files]
    for char in "".join(NAMES):
        # matplotlib takes each glyph from the first font of the family list that has it
        font = next(
            (path for path, cmap in zip(files, cmaps, strict=True) if ord(char) in cmap), None
        )
        assert font is not None, f"no font of {family} has {char!r}"
        assert font == files[1]

    picture, missing = _missing_glyphs(lambda: plots.confusion_matrix(MATRIX, NAMES))

    assert missing == []
    assert picture and base64.b64decode(picture).startswith(PNG)


def test_mixed_scripts_in_a_learning_curve_legend(fresh_fonts) -> None:
    history = [{"step": 10 * i, "val_loss": 1 / i, "val_正解率": 0.5 + i / 10} for i in (1, 2)]

    picture, missing = _missing_glyphs(lambda: plots.learning_curves(history, best_step=10))

    assert picture and missing == []


def test_without_the_font_pictures_still_render_with_a_warning(
    fresh_fonts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(plots, "cjk_font_path", lambda: None)

    with caplog.at_level(logging.WARNING, logger=plots.log.name):
        picture, missing = _missing_glyphs(lambda: plots.confusion_matrix(MATRIX, NAMES))

    assert plots.font_family() == ("DejaVu Sans",)
    assert picture and base64.b64decode(picture).startswith(PNG)
    assert missing  # the boxes this test file exists to catch
    assert f"pip install --no-deps {plots.CJK_FONT_PACKAGE}" in caplog.text
