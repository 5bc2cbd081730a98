"""Experiment tracking (`tracking:`, `--tracking-uri`): real tiny runs recorded in MLflow
and TensorBoard and read back with the libraries' own readers; a search as one MLflow run
with a nested run per trial; the refusals before any work; a tracker that fails mid-run is
a warning, and a run that stops ends its tracked run FAILED or KILLED."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tunesmith.cli import main
from tunesmith.tracking import (
    FAILED,
    FINISHED,
    KILLED,
    MAX_PARAM_VALUE,
    Tracking,
    _Guarded,
    flatten_params,
    mlflow_uri,
    numbers,
)

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def quick_recipe(tiny_recipe: dict) -> dict:
    """The tiny BERT recipe without the checks that have tests of their own, so a tracked
    run takes a few seconds; evaluated every 5 steps, so its history has several lines."""
    recipe = dict(tiny_recipe)
    recipe["train"] = dict(recipe["train"], eval_every=5)
    recipe["guards"] = {"data_quality": "off", "forgetting": None}
    return recipe


def write(recipe: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def history(run: Path) -> list[dict]:
    lines = (run / "history.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- real runs, read back ------------------------------------------------------------------


def test_mlflow_records_a_real_run(quick_recipe, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    recipe = write(quick_recipe | {"tracking": "mlflow"}, tmp_path / "recipe.yaml")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output", str(run), "--tracking-uri", uri]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"mlflow ui --backend-store-uri {uri}" in out

    mlflow = client(uri)
    experiment = mlflow.get_experiment_by_name("tunesmith")
    (recorded,) = mlflow.search_runs([experiment.experiment_id])
    assert recorded.info.status == FINISHED and recorded.info.run_name == "run"
    params = recorded.data.params
    assert params["method.name"] == "lora" and params["method.r"] == "4"
    assert float(params["train.learning_rate"]) == 5e-3
    assert params["tracking.backend"] == "mlflow" and params["data.validation"] == "null"
    assert recorded.data.tags["tunesmith.run_folder"] == str(run.absolute())

    lines = history(run)
    assert len(lines) >= 3
    steps = mlflow.get_metric_history(recorded.info.run_id, "val_macro_f1")
    assert [m.step for m in steps] == [line["step"] for line in lines]
    assert [m.value for m in steps] == pytest.approx([line["val_macro_f1"] for line in lines])
    train_loss = mlflow.get_metric_history(recorded.info.run_id, "train_loss")
    assert [m.value for m in train_loss] == pytest.approx([line["train_loss"] for line in lines])

    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    final = recorded.data.metrics
    assert final["fine_tuned.accuracy"] == pytest.approx(metrics["fine_tuned"]["accuracy"])
    assert final["baseline.macro_f1"] == pytest.approx(metrics["baseline"]["macro_f1"])
    assert final["wall_seconds"] == pytest.approx(metrics["wall_seconds"])
    artifacts = {a.path for a in mlflow.list_artifacts(recorded.info.run_id)}
    assert {"metrics.json", "report.html", "recipe.yaml"} <= artifacts
    copy = Path(mlflow.download_artifacts(recorded.info.run_id, "metrics.json", str(tmp_path)))
    assert json.loads(copy.read_text(encoding="utf-8")) == metrics
    # the artifacts sit beside the store, not in the working directory
    assert experiment.artifact_location.startswith((tmp_path / "store").as_uri())


def test_tensorboard_records_a_real_run(quick_recipe, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = write(quick_recipe | {"tracking": "tensorboard"}, tmp_path / "recipe.yaml")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output", str(run)]) == 0
    logs = run / "tensorboard"
    assert f"tensorboard --logdir {logs}" in " ".join(capsys.readouterr().out.split())

    events = EventAccumulator(str(logs), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    lines = history(run)
    assert len(lines) >= 3
    scalars = events.Scalars("val_macro_f1")
    assert [s.step for s in scalars] == [line["step"] for line in lines]
    assert [s.value for s in scalars] == pytest.approx([line["val_macro_f1"] for line in lines])
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    (accuracy,) = events.Scalars("fine_tuned.accuracy")
    assert accuracy.value == pytest.approx(metrics["fine_tuned"]["accuracy"])
    assert accuracy.step == metrics["steps"]

    def text(tag: str) -> str:
        (event,) = events.Tensors(f"{tag}/text_summary")
        return event.tensor_proto.string_val[0].decode("utf-8")

    assert "method.name: lora" in text("params") and "train.learning_rate: 0.005" in text("params")
    assert '"fine_tuned"' in text("artifacts/metrics.json")
    assert text("status") == FINISHED
    # the HParams dashboard has the run: its parameters beside its final metrics
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_a_search_is_one_mlflow_run_with_a_nested_run_per_trial(quick_recipe, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = dict(quick_recipe, tracking={"backend": "mlflow", "uri": uri, "experiment": "s"})
    search["train"] = dict(search["train"], epochs=1)
    search["tune"] = {"train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}
    search.pop("output_dir")
    recipe = write(search, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    assert main(["tune", str(recipe), "--trials", "2", "--output", str(folder)]) == 0
    assert "mlflow ui --backend-store-uri" in capsys.readouterr().out

    mlflow = client(uri)
    runs = mlflow.search_runs([mlflow.get_experiment_by_name("s").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (parent,) = parents
    children = sorted((r for r in runs if r not in parents), key=lambda r: r.info.run_name)
    assert [r.info.run_name for r in children] == ["trial-0000", "trial-0001"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert parent.info.run_name == "tuned" and parent.info.status == FINISHED
    assert parent.data.params["search.metric"] == "macro_f1"
    for number, child in enumerate(children):
        assert child.data.tags["tunesmith.trial"] == str(number)
        trial = folder / "trials" / f"{number:04d}"
        drawn = yaml.safe_load((trial / "recipe.yaml").read_text(encoding="utf-8"))
        assert float(child.data.params["train.learning_rate"]) == pytest.approx(
            drawn["train"]["learning_rate"]
        )
        steps = mlflow.get_metric_history(child.info.run_id, "val_macro_f1")
        assert [m.step for m in steps] == [line["step"] for line in history(trial)]
        if child.info.status == FINISHED:  # a pruned trial ends KILLED
            assert "validation.macro_f1" in child.data.metrics
    assert parent.data.metrics["best_trial"] in (0, 1)
    assert "best.fine_tuned.accuracy" in parent.data.metrics  # scored on test once, in best/
    artifacts = {a.path for a in mlflow.list_artifacts(parent.info.run_id)}
    assert {"tune.html", "trials.csv", "best-recipe.yaml"} <= artifacts


def test_a_search_under_tensorboard_writes_a_folder_per_trial(quick_recipe, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    search = dict(quick_recipe, tracking="tensorboard")
    search["train"] = dict(search["train"], epochs=1)
    search["tune"] = {"train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}
    search.pop("output_dir")
    recipe = write(search, tmp_path / "recipe.yaml")
    folder = tmp_path / "tuned"
    assert main(["tune", str(recipe), "--trials", "2", "--output", str(folder)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"tensorboard --logdir {folder / 'trials'}" in out
    for number in (0, 1):
        trial = folder / "trials" / f"{number:04d}"
        events = EventAccumulator(str(trial / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        steps = [s.step for s in events.Scalars("val_macro_f1")]
        assert steps == [line["step"] for line in history(trial)]


# --- refused before any work ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracking", "says"),
    [
        ("mlfow", ["tracking", "did you mean 'mlflow'"]),
        ({"backend": "tensorbord"}, ["tracking.backend", "'tensorbord'", "tensorboard"]),
        ({"backend": "mlflow", "experimnt": "x"}, ["tracking.experimnt", "'experiment'"]),
    ],
)
def test_a_misspelt_tracking_key_exits_2_naming_it(quick_recipe, tracking, says, tmp_path, capsys):
    recipe = write(quick_recipe | {"tracking": tracking}, tmp_path / "recipe.yaml")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output", str(run)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    for word in says:
        assert word in err
    assert not run.exists()


def test_an_mlflow_server_that_does_not_answer_is_refused_before_any_work(
    quick_recipe, tmp_path, capsys
):
    recipe = write(quick_recipe | {"tracking": "mlflow"}, tmp_path / "recipe.yaml")
    run = tmp_path / "run"
    uri = f"http://127.0.0.1:{free_port()}"
    assert main(["train", str(recipe), "--output", str(run), "--tracking-uri", uri]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"tracking.uri {uri}: no MLflow tracking server answers there" in err
    assert "--set tracking=none" in err
    assert not run.exists()
    folder = tmp_path / "tuned"  # the same check before a search
    tune = ["tune", str(recipe), "--trials", "1", "--output", str(folder), "--tracking-uri", uri]
    assert main(tune) == 2
    assert "no MLflow tracking server" in capsys.readouterr().err
    assert not folder.exists()


def test_a_tracking_uri_without_a_backend_is_refused(quick_recipe, tmp_path, capsys):
    recipe = write(quick_recipe, tmp_path / "recipe.yaml")  # tracking: none
    args = ["train", str(recipe), "--output", str(tmp_path / "run")]
    assert main([*args, "--tracking-uri", "sqlite:///m.db"]) == 2
    assert "--set tracking=mlflow" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "run").exists()


def test_a_store_that_is_not_an_sqlite_database_is_left_alone(quick_recipe, tmp_path, capsys):
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n", encoding="utf-8")
    recipe = write(
        quick_recipe | {"tracking": {"backend": "mlflow", "uri": f"sqlite:///{notes}"}},
        tmp_path / "recipe.yaml",
    )
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output", str(run)]) == 2
    assert "not an SQLite database" in " ".join(capsys.readouterr().err.split())
    assert notes.read_text(encoding="utf-8") == "my notes\n"
    assert not run.exists()


def test_a_stopped_run_ends_its_mlflow_run_killed(quick_recipe, tmp_path, monkeypatch):
    import tunesmith.run

    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(tunesmith.run, "score_before", interrupted)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = write(quick_recipe | {"tracking": "mlflow"}, tmp_path / "recipe.yaml")
    args = ["train", str(recipe), "--output", str(tmp_path / "run"), "--tracking-uri", uri]
    assert main(args) == 130
    mlflow = client(uri)
    (recorded,) = mlflow.search_runs([mlflow.get_experiment_by_name("tunesmith").experiment_id])
    assert recorded.info.status == KILLED
    assert recorded.data.params["method.name"] == "lora"  # recorded from the start


def test_a_server_that_answers_but_fails_costs_the_run_nothing(
    quick_recipe, tmp_path, capsys, monkeypatch
):
    """Up at /health, broken for everything else (a proxy in the way): one warning, and the
    run and its folder finish as they would untracked."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class HalfServer(BaseHTTPRequestHandler):
        def do_GET(self):
            self._answer(200 if self.path == "/health" else 404)

        def do_POST(self):
            self._answer(404)

        def _answer(self, status: int) -> None:
            body = b"OK" if status == 200 else b'{"error_code": "ENDPOINT_NOT_FOUND"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), HalfServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        recipe = write(quick_recipe | {"tracking": "mlflow"}, tmp_path / "recipe.yaml")
        run = tmp_path / "run"
        assert main(["train", str(recipe), "--output", str(run), "--tracking-uri", uri]) == 0
    finally:
        server.shutdown()
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("Tracking (mlflow) failed") == 1 and "the run goes on without it" in out
    assert "MLflow: run" not in out
    assert {"metrics.json", "report.html", "adapter"} <= {p.name for p in run.iterdir()}


# --- the tracker's contract, without a run -------------------------------------------------


class Flaky(_Guarded):
    """A backend whose evaluations fail after the first: what a server going away does."""

    backend = "flaky"

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.calls: list[tuple] = []

    def _start(self, params, tags):
        self.calls.append(("start", params))

    def _log(self, metrics, step):
        if step > 1:
            raise ConnectionError("server went away\nsecond line")
        self.calls.append(("log", metrics, step))

    def _final(self, metrics, step):
        self.calls.append(("final", metrics, step))

    def _artifacts(self, files):
        self.calls.append(("artifacts", files))

    def _end(self, status):
        self.calls.append(("end", status))


def test_a_tracker_that_fails_mid_run_warns_once_and_records_nothing_more():
    console = Console(record=True, width=200)
    tracker = Flaky(console)
    tracker.start({"train": {"epochs": 2}})
    tracker.log_metrics({"step": 1, "val_loss": 0.5, "best": True}, 1)
    tracker.log_metrics({"step": 2, "val_loss": 0.4}, 2)  # fails: a warning
    tracker.log_metrics({"step": 3, "val_loss": 0.3}, 3)
    tracker.log_final({"fine_tuned": {"accuracy": 1.0}})
    tracker.end()
    assert tracker.calls == [("start", {"train.epochs": "2"}), ("log", {"val_loss": 0.5}, 1)]
    text = console.export_text()
    assert text.count("Tracking (flaky) failed") == 1
    assert "ConnectionError: server went away" in text and "second line" not in text
    assert tracker.where() is None


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, FINISHED), (KeyboardInterrupt, KILLED), (ValueError, FAILED), (LookupError, KILLED)],
)
def test_recording_ends_the_run_as_the_block_ended(error, status):
    tracker = Flaky(Console(quiet=True))
    tracker.start({})
    try:
        with tracker.recording(stopped=(LookupError,)):
            if error is not None:
                raise error
    except (KeyboardInterrupt, ValueError, LookupError):
        pass
    assert tracker.calls[-1] == ("end", status)
    tracker.end(FAILED)  # once ended, always ended
    assert [c for c in tracker.calls if c[0] == "end"] == [("end", status)]


def test_params_and_metric_names_fit_mlflow():
    params = flatten_params(
        {"data": {"train": "t.csv", "test": None}, "compare": ["base", "rag"], "x": "y" * 7000}
    )
    assert params["data.train"] == "t.csv" and params["data.test"] == "null"
    assert params["compare"] == '["base", "rag"]'
    assert len(params["x"]) == MAX_PARAM_VALUE and params["x"].endswith("...")
    found = numbers(
        {
            "fine_tuned": {"per_class": {"a/b": {"f1": 1}, "日本": {"f1": 0.5}}},
            "ok": True,
            "cm": [1],
        }
    )
    assert found == {"fine_tuned.per_class.a_b.f1": 1.0, "fine_tuned.per_class.日本.f1": 0.5}


def test_the_default_mlflow_store_is_sqlite_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert mlflow_uri("sqlite:///sub/m.db") == f"sqlite:///{tmp_path / 'sub' / 'm.db'}"
    assert mlflow_uri("store.db") == f"sqlite:///{tmp_path / 'store.db'}"
    assert mlflow_uri("http://host:5000") == "http://host:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://other:5000")
    assert mlflow_uri(None) == "http://other:5000"
    assert not Tracking().enabled and Tracking("mlflow").enabled


def test_a_tensorboard_uri_gives_each_run_a_folder_of_its_own(tmp_path):
    logs = tmp_path / "logs"
    (logs / "run").mkdir(parents=True)
    (logs / "run" / "events.out.tfevents.old").write_text("another run's")
    tracking = Tracking("tensorboard", str(logs))
    assert tracking.open(Console(quiet=True), "run", tmp_path / "r").log_dir == logs / "run-2"
    trial = tracking.child(None, "tuned").open(Console(quiet=True), "trial-0001", tmp_path)
    assert trial.log_dir == logs / "tuned" / "trial-0001"
    default = Tracking("tensorboard").open(Console(quiet=True), "run", tmp_path / "r")
    assert default.log_dir == tmp_path / "r" / "tensorboard"


def test_workers_record_where_the_search_records(tmp_path):
    from tunesmith.tune.budget import Budget
    from tunesmith.tune.folder import TuneFolder
    from tunesmith.tune.workers import worker_command

    folder = TuneFolder(tmp_path / "tuned")
    argv = worker_command(
        tmp_path / "r.yaml", [], folder, "sqlite:///s.db", Budget(2, None, None), "http://h:5"
    )
    assert argv[argv.index("--tracking-uri") + 1] == "http://h:5"
    assert "--tracking-uri" not in worker_command(
        tmp_path / "r.yaml", [], folder, "sqlite:///s.db", Budget(2, None, None)
    )


def test_commands_that_do_not_track_never_import_mlflow_or_tensorboard():
    code = (
        "import sys, tunesmith.cli, tunesmith.run, tunesmith.tune.search, tunesmith.tracking; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow' "
        "or m.startswith('torch.utils.tensorboard')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "[]"
