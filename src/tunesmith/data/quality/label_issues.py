"""Likely label errors: out-of-fold class probabilities from an ensemble of cheap models,
ranked by cleanlab's confident learning, and a cut chosen for precision.

Every row is scored by models that never saw it (k-fold), so a row whose given label the
other rows' pattern contradicts stands out. The ensemble averages logistic regressions on
the frozen pre-trained model's features (the recipe's own model: one forward pass, no
training) and on the surface of the data (word and character n-grams of texts, small grey
thumbnails of images); each model's regularisation is chosen by held-out log loss, which
keeps its probabilities calibrated. cleanlab ranks the candidates; only those whose given
label is at least 40% likely wrong (a posterior from cleanlab's estimated noise rates), or
that the models clearly give to another class, are flagged; every candidate stays in
quality.json (summary.label_issue_candidates)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from rich.console import Console
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tunesmith.data.images import open_image
from tunesmith.data.quality.findings import Finding, row_list
from tunesmith.data.quality.items import SPLITS, CheckData
from tunesmith.recipe import Recipe

MIN_ROWS = 20
"""Fewer labelled rows than this give no trustworthy out-of-fold probabilities."""
FOLDS = 5
WEAK_MODEL = 0.7
"""Out-of-fold accuracy under which the flagged rows are mostly the task's own ambiguity."""
FLAG_AT = 0.4
"""A candidate is flagged when its given label is at least this likely wrong (posterior);
the others stay in the ranked list for review. Chosen with benchmarks/label_issues.py
(chatterbot topics, 10% of labels flipped): 0.5 flags fewer rows, more precisely (0.8), but
finds 0.6 of the flips; 0.3 finds 0.78 at 0.63 precision. On images (MNIST 5k,
`--dataset mnist`, seeds 0 and 1) the cut flags 392 and 388 rows, 0.98 and 0.99 of them
flips, finding 0.77 of them; there the posterior is cautious (of the candidates between
0.2 and 0.4, 0.9 are flips)."""
CLEARLY_OTHER = (0.2, 0.7)
"""A candidate is flagged too when its given label has at most the first probability and
another class at least the second (0.9 of those are flips in the benchmark): in clean data
the estimated noise rates are low and keep the posterior of a clear error down."""
PROBE_STRENGTHS = (0.01, 0.1)
"""Inverse regularisation tried for the logistic regression on the pre-trained features."""


FrozenFeatures = Callable[[CheckData, Recipe, list[str]], dict[str, np.ndarray]]
"""A task kind's pooled pre-trained features of every split (no head), for label issues."""


def label_issue_findings(
    data: CheckData, recipe: Recipe, console: Console, frozen_features: FrozenFeatures
) -> tuple[list[Finding], dict]:
    labels = data.label_names
    rows = sum(len(s) for s in data.splits.values())
    if len(labels) < 2 or rows < MIN_ROWS:
        return [], {"label_issues": f"skipped: {rows} rows, {len(labels)} labels"}
    console.print(
        f"Looking for label errors: features of {rows} rows from {recipe.model} ...",
        markup=False,  # a model path may hold [brackets]
        highlight=False,
    )
    features = frozen_features(data, recipe, labels)
    x = np.concatenate([features[name] for name in SPLITS if len(data.splits[name])])
    index = {label: i for i, label in enumerate(labels)}
    y = np.asarray([index[label] for name in SPLITS for label in data.splits[name].labels])
    refs = [(name, i) for name in SPLITS for i in range(len(data.splits[name]))]

    models: dict[str, dict] = {}
    probabilities, scored = out_of_fold_probabilities(x, y, surface_features(data), models=models)
    if probabilities is None:
        return [], {"label_issues": "skipped: every class needs at least 2 rows"}
    given = y[scored]
    ranked = ranked_label_issues(given, probabilities)
    wrong = error_probabilities(given, probabilities)
    by_split: dict[str, list[dict]] = {name: [] for name in SPLITS}
    candidates = []
    for position in ranked:
        split, i = refs[scored[position]]
        p = probabilities[position]
        others = p.copy()
        others[given[position]] = -1.0
        suggested = int(np.argmax(others))
        detail = {
            "row": data.splits[split].rows[i],
            "label": labels[given[position]],
            "suggested": labels[suggested],
            "confidence": round(float(p[suggested]), 4),
            "label_probability": round(float(p[given[position]]), 4),
            "error_probability": round(float(wrong[position]), 4),
        }
        clear = p[given[position]] <= CLEARLY_OTHER[0] and p[suggested] >= CLEARLY_OTHER[1]
        flagged = bool(wrong[position] >= FLAG_AT or clear)
        candidates.append({"split": split, **detail, "flagged": flagged})
        if flagged:
            by_split[split].append(detail)
    accuracy = float((probabilities.argmax(1) == given).mean())
    caution = (
        f" The models predict only {accuracy:.0%} of the given labels, so expect false "
        "alarms: review, don't relabel blindly."
        if accuracy < WEAK_MODEL
        else ""
    )
    findings = []
    for split, details in by_split.items():
        if not details:
            continue
        unflagged = sum(1 for c in candidates if c["split"] == split and not c["flagged"])
        more = (
            f" {unflagged} less certain candidate(s) are ranked in quality.json "
            "(summary.label_issue_candidates)."
            if unflagged
            else ""
        )
        flagged_rows = [d["row"] for d in details]
        expected = sum(d["error_probability"] for d in details)
        findings.append(
            Finding(
                check="label_issues",
                severity="warning",
                split=split,
                rows=flagged_rows,
                file=data.splits[split].file,
                details=details,
                message=f"{len(flagged_rows)} row(s) look mislabelled (about {expected:.0f} "
                "of them expected to be real errors): models that never saw them "
                "(out-of-fold) suggest another label (most likely first: rows "
                f"{row_list(flagged_rows)})." + more + caution,
                fix="review them, e.g. with `tunesmith annotate DATA --suspects quality.json`",
            )
        )
    flagged_errors = sum(c["error_probability"] for c in candidates if c["flagged"])
    summary = {
        "label_issues": sum(c["flagged"] for c in candidates),
        "label_issues_expected_errors": round(float(flagged_errors), 1),
        "label_issue_model_accuracy": round(accuracy, 4),
        "label_issue_models": models,
        "label_issue_candidates": candidates,
    }
    return findings, summary


def out_of_fold_probabilities(
    x: np.ndarray,
    y: np.ndarray,
    surfaces: Sequence[Surface] = (),
    seed: int = 0,
    models: dict[str, dict] | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(probabilities of the rows scored, their indices): rows of classes with a single
    example cannot be held out and are left out.

    The probabilities are the mean of logistic regressions, each scored out-of-fold
    (stratified k-fold, k up to 5 as the smallest class allows): one on the pre-trained
    features `x`, one per `surface` (word and character n-grams of texts, small grey
    thumbnails of images), which know what the pre-trained model may not (a domain's words,
    an image set's look). Each model's regularisation is the one of its candidates with the
    lowest log loss on the first fold. A model whose out-of-fold log loss is no better than
    the class frequencies' (an encoder that knows nothing of the data's language) is left
    out of the mean, unless every model is. `models` (if given) receives each model's
    out-of-fold accuracy and whether it was used, by name."""
    counts = Counter(y.tolist())
    scored = np.flatnonzero([counts[label] >= 2 for label in y.tolist()])
    kept = y[scored]
    if len(set(kept.tolist())) < 2:
        return None, scored
    folds = min(FOLDS, min(Counter(kept.tolist()).values()))
    # re-number the classes kept, so every fold's model sees the same class set
    classes, dense = np.unique(kept, return_inverse=True)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    probe = Surface("pre-trained features", x, _scaled_regression, PROBE_STRENGTHS)
    every = np.arange(len(classes))
    prior = np.bincount(dense, minlength=len(classes)) / len(dense)
    chance = log_loss(dense, np.tile(prior, (len(dense), 1)), labels=every)
    each, losses = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny folds
        for model in [probe, *surfaces]:
            features = model.features[scored]
            strength = _chosen_strength(model, features, dense, splitter)
            p = cross_val_predict(
                model.make(strength), features, dense, cv=splitter, method="predict_proba"
            )
            each.append(p)
            losses.append(log_loss(dense, np.clip(p, 1e-12, 1), labels=every))
            if models is not None:
                models[model.name] = {
                    "accuracy": round(float((p.argmax(1) == dense).mean()), 4),
                    "strength": strength,
                }
    used = [i for i, loss in enumerate(losses) if loss < chance] or [int(np.argmin(losses))]
    if models is not None:
        for i, name in enumerate(models):
            models[name]["used"] = i in used
    full = np.zeros((len(scored), int(y.max()) + 1), dtype=np.float64)
    full[:, classes] = np.mean([each[i] for i in used], axis=0)
    return full, scored


def _chosen_strength(model: Surface, x: Any, y: np.ndarray, splitter: StratifiedKFold) -> float:
    """The candidate strength with the lowest log loss on the first fold (cheap: one fit
    each), so the averaged probabilities are neither over- nor under-confident."""
    if len(model.strengths) == 1:
        return model.strengths[0]
    train, held = next(splitter.split(np.zeros(len(y)), y))
    labels = np.arange(int(y.max()) + 1)
    losses = []
    for strength in model.strengths:
        fitted = model.make(strength).fit(x[train], y[train])
        p = np.zeros((len(held), len(labels)))
        p[:, fitted.classes_] = fitted.predict_proba(x[held])
        losses.append(log_loss(y[held], np.clip(p, 1e-12, 1), labels=labels))
    return model.strengths[int(np.argmin(losses))]


def ranked_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Positions of candidate label errors, most likely first (cleanlab, confident learning,
    pruned by its estimated noise rates; ranked by the given label's probability)."""
    from cleanlab.filter import find_label_issues

    present, remap = _present(probabilities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_label_issues(
            remap[labels],
            probabilities[:, present],
            return_indices_ranked_by="self_confidence",
        )


def error_probabilities(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Each row's probability that its given label is wrong: Bayes' rule with cleanlab's
    estimated noise rates p(given | true) (its calibrated confident joint) and the models'
    out-of-fold probabilities as the prior of the true class. Their sum over rows is the
    number of real errors to expect among them."""
    from cleanlab.count import estimate_joint

    present, remap = _present(probabilities)
    dense, p = remap[labels], probabilities[:, present]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = estimate_joint(dense, p)  # [given, true]
    totals = joint.sum(0, keepdims=True)
    noise = np.divide(joint, totals, out=np.zeros_like(joint), where=totals > 0)
    posterior = noise[dense] * p
    norm = posterior.sum(1)
    right = np.divide(
        posterior[np.arange(len(dense)), dense], norm, out=np.ones(len(dense)), where=norm > 0
    )
    return np.clip(1.0 - right, 0.0, 1.0)


def _present(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classes with probability mass (the others had a single row), and a re-numbering."""
    present = np.flatnonzero(probabilities.sum(0) > 0)
    remap = np.full(probabilities.shape[1], -1)
    remap[present] = np.arange(len(present))
    return present, remap


class Surface(NamedTuple):
    """A model of the ensemble: its features (all rows), a logistic regression for a given
    inverse regularisation strength, and the strengths to choose from."""

    name: str
    features: Any
    make: Callable[[float], Any]
    strengths: tuple[float, ...]


def surface_features(data: CheckData) -> list[Surface]:
    """Texts: word 1-2-gram and character 2-5-gram TF-IDF; images: 32x32 grey pixels (all
    splits, in order)."""
    if data.shape == "images":
        paths = [path for name in SPLITS for path in data.splits[name].paths]
        pixels = np.stack([_grey_pixels(path) for path in paths])
        return [Surface("pixels", pixels, _scaled_regression, (0.01,))]
    texts = [text for name in SPLITS for text in data.splits[name].texts]
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    characters = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    return [
        Surface("word n-grams", words.fit_transform(texts), _regression, (10.0, 30.0)),
        Surface("character n-grams", characters.fit_transform(texts), _regression, (10.0, 30.0)),
    ]


def _regression(strength: float) -> Any:
    return LogisticRegression(C=strength, max_iter=3000)


def _scaled_regression(strength: float) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=3000))


def _grey_pixels(path: str, side: int = 32) -> np.ndarray:
    image = open_image(path).convert("L").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32).ravel() / 255.0
