import itertools
import json

import pytest
import torch

from tunesmith.data.text import load_text_classification
from tunesmith.models.text import load_text_classifier, load_tokenizer
from tunesmith.recipe import load_recipe
from tunesmith.tasks.text_classification.task import TextClassificationTask
from tunesmith.train.batching import length_grouped_batches
from tunesmith.train.loop import fit, make_optimizer, plan_steps, train_step
from tunesmith.train.schedule import lr_factor

CPU = torch.device("cpu")


def setup(tiny_model_dir, data_csv, **train):
    recipe = load_recipe(
        {
            "model": str(tiny_model_dir),
            "data": {"train": str(data_csv)},
            "method": {"name": "full"},
            "train": {"precision": "fp32", "learning_rate": 1e-3, **train},
        }
    )
    torch.manual_seed(0)
    splits = load_text_classification(recipe.data, seed=0)
    model = load_text_classifier(tiny_model_dir, splits.label_names)
    model.config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    task = TextClassificationTask(splits, load_tokenizer(tiny_model_dir), 64, CPU, None)
    return recipe, model, task


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_same(a: dict, b: dict, atol: float) -> None:
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


def test_accumulation_equals_one_larger_batch(tiny_model_dir, data_csv):
    recipe, _, task = setup(tiny_model_dir, data_csv, max_grad_norm=0.5)
    indices = length_grouped_batches(task.lengths("train"), 12, 0, 0)[0]
    after = []
    for micro in ([indices], [indices[:5], indices[5:]]):
        torch.manual_seed(0)
        model = load_text_classifier(tiny_model_dir, task.splits.label_names)
        model.eval()  # no dropout: the two runs must see the same function
        optimizer = make_optimizer(model, recipe.train, 1e-3)
        _, items, _, _ = train_step(model, task, micro, optimizer, recipe.train, CPU, None)
        assert items == 12
        after.append(weights(model))
    assert_same(after[0], after[1], atol=1e-6)


def test_uneven_micro_batches_are_normalised_by_items(tiny_model_dir, data_csv):
    _, model, task = setup(tiny_model_dir, data_csv)
    indices = list(range(10))
    whole = task.loss_sum(model, task.batch("train", indices)) / 10
    parts = task.loss_sum(model, task.batch("train", indices[:7])) + task.loss_sum(
        model, task.batch("train", indices[7:])
    )
    torch.testing.assert_close(whole, parts / 10, atol=1e-5, rtol=0)


def test_training_lowers_validation_loss_and_writes_history(tiny_model_dir, data_csv, tmp_path):
    recipe, model, task = setup(
        tiny_model_dir, data_csv, epochs=4, batch_size=8, early_stopping=None
    )
    before = task.evaluate(model, "validation")["loss"]
    result = fit(model, task, recipe.train, 1e-2, CPU, None, tmp_path)
    after = task.evaluate(model, "validation")["loss"]
    assert after < before
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines][:2] == [1.0, 2.0]
    assert {"step", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr"} <= set(lines[0])
    assert lines[0]["tokens_per_s"] > 0 and result.samples_per_second > 0
    assert not (tmp_path / "checkpoints").exists()  # removed after a finished run


def test_best_weights_are_restored_after_early_stopping(tiny_model_dir, data_csv, tmp_path):
    # a huge learning rate wrecks the model after the first evaluation
    recipe, model, task = setup(
        tiny_model_dir,
        data_csv,
        epochs=6,
        batch_size=8,
        warmup_ratio=0,
        scheduler="constant",
        early_stopping={"metric": "loss", "patience": 1},
    )
    seen = []
    result = fit(model, task, recipe.train, 0.5, CPU, None, tmp_path, on_evaluation=seen.append)
    best = min(seen, key=lambda r: r["val_loss"])
    assert result.best_step == best["step"]
    restored = task.evaluate(model, "validation")["loss"]
    assert restored == pytest.approx(best["val_loss"], abs=1e-4)
    if result.stopped_early:
        assert "did not improve" in result.stop_reason


def test_training_that_only_hurts_is_rolled_back_to_the_start(tiny_model_dir, data_csv, tmp_path):
    """score_start: the weights before training compete for best; a wrecking learning rate
    leaves the model exactly as it started."""
    recipe, model, task = setup(
        tiny_model_dir,
        data_csv,
        epochs=3,
        batch_size=8,
        warmup_ratio=0,
        scheduler="constant",
        early_stopping={"metric": "loss", "patience": 2},
    )
    start = task.evaluate(model, "validation")["loss"]
    result = fit(model, task, recipe.train, 5.0, CPU, None, tmp_path, score_start=True)
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 0 and lines[0]["best"] is True
    assert result.best_step == 0
    assert task.evaluate(model, "validation")["loss"] == pytest.approx(start, abs=1e-5)


def test_a_diverged_step_is_not_applied_and_stops_the_run(tiny_model_dir, data_csv, tmp_path):
    """A step whose loss is NaN ends training with a reason that says what to change; the
    weights never take that step, so the model stays finite."""
    recipe, model, task = setup(
        tiny_model_dir, data_csv, epochs=3, batch_size=8, eval_every=2, early_stopping=None
    )
    calls = itertools.count()
    loss_sum = task.loss_sum

    def diverging(model, batch):
        loss = loss_sum(model, batch)
        return loss * float("nan") if model.training and next(calls) == 3 else loss

    task.loss_sum = diverging
    result = fit(model, task, recipe.train, 1e-3, CPU, None, tmp_path)
    assert result.steps == 3 and result.stopped_early
    assert "training loss was nan at step 4" in result.stop_reason
    assert "lower train.learning_rate" in result.stop_reason
    assert all(torch.isfinite(p).all() for p in model.parameters())
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2]


def test_resume_continues_to_the_same_weights(tiny_model_dir, data_csv, tmp_path):
    settings = {"epochs": 3, "batch_size": 8, "eval_every": 5, "early_stopping": None}
    recipe, straight, task = setup(tiny_model_dir, data_csv, **settings)
    fit(straight, task, recipe.train, 1e-3, CPU, None, tmp_path / "straight")

    recipe, interrupted, task = setup(tiny_model_dir, data_csv, **settings)

    def crash(record: dict) -> None:
        if record["step"] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            interrupted,
            task,
            recipe.train,
            1e-3,
            CPU,
            None,
            tmp_path / "resumed",
            on_evaluation=crash,
        )
    recipe, resumed, task = setup(tiny_model_dir, data_csv, **settings)
    fit(resumed, task, recipe.train, 1e-3, CPU, None, tmp_path / "resumed", resume=True)
    assert_same(weights(straight), weights(resumed), atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed/history.jsonl").open()]
    assert steps == sorted(set(steps)) and steps[0] == 5


def test_schedule_warms_up_then_decays():
    factors = [lr_factor(s, 100, 10, "linear") for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.02
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5, abs=0.01)
    assert lr_factor(99, 100, 10, "constant") == 1.0


def test_auto_epochs_aim_for_enough_steps(tiny_model_dir, data_csv):
    recipe, _, _ = setup(tiny_model_dir, data_csv)
    small = plan_steps(10, recipe.train)  # 10 steps an epoch: 30 epochs at most
    assert small.total_steps == 300
    large = plan_steps(1000, recipe.train)  # big data: 3 epochs
    assert large.total_steps == 3000


def test_auto_epochs_follow_the_task_kind():
    from tunesmith.tasks.registry import get_task

    llm = load_recipe({"task": "causal-lm", "data": {"train": "x.jsonl"}})
    target, fewest, most = llm.train.auto_epochs
    kind = get_task("causal-lm").auto_epochs
    assert (target, fewest, most) == (kind.target_steps, kind.fewest, kind.most)
    assert plan_steps(1000, llm.train).total_steps == 1000 * fewest
    assert plan_steps(1, llm.train).total_steps == most
    assert llm.train.early_stopping.relative_min_delta == get_task("causal-lm").relative_min_delta


def test_a_relative_min_delta_ignores_crumbs_of_improvement():
    from tunesmith.evaluate.metrics import is_improvement

    assert is_improvement("loss", 0.995, 1.0)
    assert not is_improvement("loss", 0.995, 1.0, relative=0.01)
    assert is_improvement("loss", 0.98, 1.0, relative=0.01)
    assert not is_improvement("macro_f1", 0.805, 0.8, relative=0.01)
    assert is_improvement("macro_f1", 0.81, 0.8, min_delta=0.001, relative=0.01)


def test_length_grouped_batches_cover_everything_once_and_pad_little():
    lengths = [5, 50] * 100
    batches = length_grouped_batches(lengths, 10, seed=0, epoch=0)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(200))
    mixed = sum(len({lengths[i] for i in batch}) > 1 for batch in batches)
    assert mixed <= 1
    assert batches != length_grouped_batches(lengths, 10, seed=0, epoch=1)
    assert batches == length_grouped_batches(lengths, 10, seed=0, epoch=0)
