"""Progress bars: loops inside a phase or inside the training bar add lines to the bar on
screen instead of opening a second live display (rich refuses that on a terminal)."""

import io

import pytest
import yaml
from rich.console import Console
from rich.progress import Progress

from tunesmith import cli, progress
from tunesmith.progress import phase, shown, track


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100), out


def test_track_yields_every_item_and_leaves_no_task_behind():
    console, out = terminal()
    bar = Progress(*progress.columns(), console=console)
    with shown(bar):
        seen = list(track([[1, 2], [3]], "Scoring", size=len, unit="rows"))
        assert bar.tasks == []
    assert seen == [[1, 2], [3]]
    assert "Scoring" in out.getvalue()


def test_loops_in_a_phase_share_its_live_display():
    console, out = terminal()
    with phase("Checking the data", console):
        inner = list(track(range(3), "Encoding texts", unit="texts"))
        with phase("Near duplicates"):  # a phase inside a phase: one more line
            assert list(track([1], "Comparing")) == [1]
    assert inner == [0, 1, 2]
    assert progress._SHOWN == []
    assert "Checking the data" in out.getvalue()


def test_a_loop_broken_off_removes_its_line():
    console, _ = terminal()
    bar = Progress(*progress.columns(), console=console)
    with shown(bar):
        for item in track(range(10), "Generating answers"):
            if item == 2:
                break
        assert bar.tasks == []


def test_a_whole_training_run_on_a_terminal_shows_its_phases(
    tiny_recipe, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """The run's phases, validation inside the training bar and the base scoring, all on
    one console that believes it is a terminal: no 'Only one live display' error."""
    console, out = terminal()
    monkeypatch.setattr(cli, "console", console)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert cli.main(["train", str(path)]) == 0
    shown_text = out.getvalue()
    for title in ("Checking the data", "Scoring the cheaper options", "training"):
        assert title in shown_text
    assert progress._SHOWN == []
