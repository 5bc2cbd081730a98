"""The recipe: one YAML file that says what to fine-tune, on what, and how.

Every key is validated by pydantic before any work starts, and every problem is reported
at once with its key path and a hint, so a typo costs seconds, not a training run.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from tunesmith.errors import UserError
from tunesmith.method_registry import get_method, method_names, methods, settings_union
from tunesmith.strict_model import StrictModel

DataFormat = Literal["auto", "alpaca", "chat", "prompt-completion", "text"]


class DataConfig(StrictModel):
    train: str
    """Training file: csv, tsv, jsonl, json or parquet."""
    validation: str | None = None
    """Validation file; when absent, a stratified share of `train` (validation_size)."""
    test: str | None = None
    """Test file; when absent, a stratified share of `train` (test_size)."""
    text_column: str = "text"
    label_column: str = "label"
    slice_columns: list[str] = Field(default_factory=list)
    """Columns (e.g. [region, product, source]) whose values cut the rows into slices, for
    bias: class balance per slice in the data check, every test metric per slice in
    metrics.json (`slices`, the worst in `slices_worst`) and the report, with a warning
    when a slice scores far below the rest. They never reach the model; a data file without
    one is an error before any work."""
    validation_size: float = Field(0.1, gt=0, lt=1)
    test_size: float = Field(0.2, gt=0, lt=1)
    train_fraction: float = Field(1.0, gt=0, le=1)
    """Train on this share of the training rows (each class in proportion, at least one
    row each), after validation and test were split off as usual: the held-out splits stay
    the same, and a smaller share's rows are inside a larger one's (`tunesmith data curve`)."""
    drop_empty: bool = False
    """Drop rows with an empty text or label instead of stopping with an error."""
    image_column: str = "image"
    """image-classification with a csv/jsonl/parquet of images: the column of image paths
    (relative paths are read from the file's folder). A folder `root/<label>/<image>`
    needs no columns."""
    skip_bad: bool = False
    """image-classification: skip corrupt or unreadable images (listed) instead of stopping."""
    format: DataFormat = "auto"
    """causal-lm only: alpaca (instruction/input/output), chat (messages or sharegpt
    conversations), prompt-completion, or text (raw text rows, or a folder of .txt/.md/.html
    documents); auto: detected from the columns."""
    prompt_column: str | None = None
    """causal-lm prompt-completion: the prompt column (default: prompt, question or query)."""
    response_column: str | None = None
    """causal-lm prompt-completion: the answer column (default: completion, response, answer)."""
    messages_column: str | None = None
    """causal-lm chat: the list-of-messages column (default: messages or conversations)."""
    dataset: str | None = None
    """causal-lm: the entry of a LLaMA-Factory dataset_info.json (in the folder data.train
    names, or beside its file) whose file_name, formatting (alpaca or sharegpt), columns and
    tags are read; default: the entry whose file_name is data.train's file, or the folder's
    only entry."""
    system_prompt: str | None = None
    """causal-lm: a system message put before every example that has none."""
    documents: str | None = None
    """causal-lm: the knowledge source of the RAG contenders (`compare`): a folder or a
    file of .txt, .md, .html, .pdf or .jsonl documents (jsonl: a `text` field and an
    optional `id`), cut into passages (retrieval.chunk_size); default: the training pairs."""
    source_column: str | None = None
    """causal-lm: a column naming the document (file name or jsonl id) that answers each
    question; retrieval's recall@k is reported from it."""
    questions: str | None = None
    """causal-lm domain adaptation (format text): a file of questions with answers about
    the documents (alpaca, chat or prompt-completion) on which continued pre-training, RAG
    over the same documents and both are compared (`compare`)."""

    @model_validator(mode="after")
    def _split_sizes_leave_training_data(self) -> DataConfig:
        held_out = (self.validation is None) * self.validation_size + (
            self.test is None
        ) * self.test_size
        if held_out >= 0.9:
            raise ValueError(
                f"validation_size + test_size = {held_out:.2f} leaves almost nothing to train on; "
                "keep their sum under 0.9"
            )
        return self


class Preprocess(StrictModel):
    """Text keys (max_length, pack, chunk_overlap, unicode, lowercase, stop_words,
    extra_stop_words) and image keys (the rest); a key for the other kind of task is an error.
    The text options are saved in the run's recipe.yaml and applied again by eval and
    predict."""

    max_length: Annotated[int, Field(ge=8, le=32768)] | Literal["auto"] | None = None
    """Tokens per example, longer ones are truncated. auto (the default for the text
    classifiers): the length that reads every training text whole, at most 512 and
    what the model reads (batches are padded to their own longest row, so a longer limit
    costs nothing on short texts); causal-lm and seq2seq: 512 (for causal-lm also the
    length of a packed row and of a text chunk)."""
    pack: bool = True
    """causal-lm: pack several examples into each row (attention never crosses examples),
    so no compute is spent on padding. Prompt-learning methods (prefix, prompt, ptuning,
    adapter) prepend virtual tokens per row and always train one example per row."""
    chunk_overlap: int = Field(64, ge=0)
    """causal-lm raw text: tokens each chunk shares with the previous one (as context only,
    never scored twice)."""
    unicode: Literal["nfkc", "none"] | None = None
    """Unicode normalisation of every text: nfkc unifies full-width and half-width forms
    ("ＡＢＣ１２３" -> "ABC123", "ｶﾀｶﾅ" -> "カタカナ") and compatibility characters, which
    matters for Japanese; none: texts as given. Default: nfkc for text-classification, none
    for causal-lm (nfkc would teach it to write "x2" for "x²" and "..." for "…"; set it to
    nfkc to apply it to prompts and responses alike)."""
    lowercase: bool = False
    """text-classification: lowercase every text (after unicode)."""
    stop_words: Literal["none", "english", "japanese", "auto"] = "none"
    """text-classification: drop stop words. english: scikit-learn's list less negations,
    numbers and content words; japanese: janome tokens, dropping particles, auxiliary verbs
    (negations kept), symbols and a few formal words (これ, こと, する ...), the kept tokens
    joined by spaces; auto: japanese for a text with kana or kanji, else english. A text left
    empty keeps its normalised form (the run counts them)."""
    extra_stop_words: list[str] = Field(default_factory=list)
    """text-classification: more words to drop, in any case (with stop_words none: only
    these); a Japanese word must be one janome token (surface or dictionary form)."""
    image_size: int | None = Field(None, ge=16, le=1024)
    """Side of the square the model sees; default: the model's own (224 for
    efficientnet-lite0)."""
    crop_fraction: float = Field(0.875, gt=0.3, le=1.0)
    """Evaluation: resize the shorter side to image_size / crop_fraction (aspect kept), then
    crop the centre square."""
    denoise: Literal["none", "median", "gaussian"] = "none"
    """Noise reduction before anything else: a median filter (salt-and-pepper noise) or a
    Gaussian blur (sensor noise)."""
    denoise_size: int = Field(3, ge=1, le=15)
    """Median filter window (odd) or Gaussian radius, in pixels."""
    augment: bool = True
    """Training only: random resized crop, horizontal flip and colour jitter."""
    min_crop_scale: float = Field(0.5, gt=0.05, le=1.0)
    """Random resized crop: the smallest share of the image area a crop may keep."""
    flip: bool = True
    """Random horizontal flip (turn off for text, digits or anything with a handedness)."""
    color_jitter: float = Field(0.2, ge=0, le=1)
    """Random brightness, contrast and saturation change of up to this fraction."""

    @field_validator("stop_words", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        return "none" if value is None or value is False else value

    @field_validator("unicode", mode="before")
    @classmethod
    def _false_is_none(cls, value: Any) -> Any:
        return "none" if value is False else value

    @field_validator("extra_stop_words")
    @classmethod
    def _single_words(cls, words: list[str]) -> list[str]:
        spaced = [word for word in words if len(word.split()) != 1]
        if spaced:
            raise ValueError(
                f"{', '.join(repr(w) for w in spaced)}: stop words are matched one word at a "
                "time; list single words without spaces"
            )
        return [word.strip() for word in words]


TextPreprocess = Preprocess  # the name used before images existed
CLASSIFIER_TEXT_KEYS = frozenset({"lowercase", "stop_words", "extra_stop_words"})
"""Text keys refused for causal-lm: the model would learn to write without capitals or
stop words."""
TEXT_PREPROCESS_KEYS = (
    frozenset({"max_length", "pack", "chunk_overlap", "unicode"}) | CLASSIFIER_TEXT_KEYS
)
IMAGE_PREPROCESS_KEYS = frozenset(Preprocess.model_fields) - TEXT_PREPROCESS_KEYS


MethodConfig = settings_union()
"""`method:`: the settings of one registered method (tunesmith/methods/, one file each)."""


class EarlyStopping(StrictModel):
    metric: str | None = None
    """Validation metric to watch: one the task kind lists (`tunesmith recipe keys TASK`);
    default the kind's first (macro_f1 for classification, micro_f1 for multi-label, loss
    for causal-lm and seq2seq)."""
    patience: int = Field(3, ge=1)
    """Evaluations in which neither the metric nor the validation loss improved, before
    stopping; the weights with the best metric are restored."""
    min_delta: float = Field(0.0, ge=0)
    """An improvement counts only when it beats the best value by more than this."""
    relative_min_delta: float | None = Field(None, ge=0, lt=1)
    """An improvement counts only when it beats the best value by more than this fraction
    of it (0.01: 1%), so a loss that creeps down by crumbs ends the run; default: the task
    kind's (0 for classifiers, 0.01 for causal-lm and seq2seq)."""


class TrainConfig(StrictModel):
    epochs: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"
    """Passes over the training data; auto: enough for the task kind's target number of
    optimizer steps (classifiers: about 300, 3 to 30 epochs; causal-lm and seq2seq: about
    100, 2 to 8 epochs), since early stopping ends the run once validation stops
    improving."""
    learning_rate: float | None = Field(None, gt=0, lt=1)
    """Peak learning rate; when absent, the method's default (e.g. 5e-5 full, 1e-3 lora)."""
    head_learning_rate: float | None = Field(None, gt=0, lt=1)
    """Learning rate of the freshly initialised head; default max(learning_rate, 1e-3): a
    random head needs larger steps than pre-trained weights."""
    batch_size: int = Field(16, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    loss_on: Literal["response", "all"] = "response"
    """causal-lm: learn from the response tokens only (default), or from every token
    (prompts included); raw text always learns from every token."""
    eval_every: int | Literal["epoch"] = "epoch"
    """Evaluate every N optimizer steps, or at the end of each epoch."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps (overrides epochs)."""
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast where this hardware multiplies bf16 faster than fp32."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    head_init: Literal["auto", "probe", "random"] = "auto"
    """probe: start the classification head from a logistic regression fitted on the frozen
    pre-trained features, then fine-tune (LP-FT, Kumar et al. 2022: better accuracy and
    less distortion of pre-trained features on small data than a random head); auto:
    probe for image-classification, random for text-classification (whose head reads
    other features than the probe)."""
    replay: float = Field(0.0, ge=0, lt=0.9)
    """causal-lm: share of training examples drawn from the forgetting reference (its
    half that is never measured), so the model keeps practising general text."""
    l2_sp: float = Field(0.0, ge=0)
    """L2-SP (Li et al. 2018): pull the trained pre-trained weights back towards their
    starting values with this strength (e.g. 0.01), against forgetting."""
    layer_decay: float | None = Field(None, gt=0, le=1)
    """Layer-wise learning-rate decay: each layer below the top learns this factor slower
    (e.g. 0.8), the embeddings slowest; keeps the general lower layers closer to where they
    were."""
    gradient_checkpointing: bool = False
    """Recompute activations during the backward pass instead of keeping them: much less
    memory for long sequences and deep models, about a third more compute."""
    keep_checkpoints: bool = False
    """Keep checkpoints/ after a successful run (they are needed only for --resume)."""
    batchnorm: Literal["frozen", "update"] = "frozen"
    """image-classification: frozen keeps the pre-trained BatchNorm running statistics
    (protects the pre-trained features, right for photos like ImageNet's); update
    re-estimates them on the training batches, for images far from the pre-training data
    (with batches large enough to estimate them: 32 or more)."""
    compile: bool = False
    """torch.compile each transformer block (see train/compile.py): on a CPU about 15%
    faster LoRA steps for SmolLM2; the first run of a model spends about a minute
    compiling (2 cores), later runs reuse the on-disk cache."""
    distributed: Literal["ddp", "fsdp"] = "ddp"
    """With several processes (`tunesmith train --nproc N`, or torchrun): ddp keeps a whole
    copy of the model in each and averages gradients; fsdp shards weights, gradients and
    optimizer state between them (PyTorch FSDP2), for a model too big for one device.
    batch_size stays the global batch: the processes share every batch."""

    @model_validator(mode="after")
    def _eval_every_positive(self) -> TrainConfig:
        if isinstance(self.eval_every, int) and self.eval_every < 1:
            raise ValueError("eval_every must be a positive number of steps or 'epoch'")
        return self

    _auto_epochs: tuple[int, int, int] = PrivateAttr(default=(300, 3, 30))
    """(target steps, fewest, most epochs) of `epochs: auto`: the task kind's, set by the
    recipe (tasks/registry.py AutoEpochs)."""

    @property
    def auto_epochs(self) -> tuple[int, int, int]:
        return self._auto_epochs


class GenerationConfig(StrictModel):
    """causal-lm: how answers are generated for evaluation (base and tuned) and predict."""

    max_new_tokens: int = Field(128, ge=1, le=8192)
    do_sample: bool = False
    """False: greedy decoding (reproducible); True: sample with temperature and top_p."""
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_size: int = Field(32, ge=1)
    """Prompts answered together. Decoding a small model on a CPU is bound by reading the
    weights at every step, so larger batches share that cost: SmolLM2 answered 48 FAQ
    questions in 41.7 s at 8, 23.9 s at 16 and 18.0 s at 32 (2 cores)."""
    max_examples: int | None = Field(200, ge=1)
    """Test examples scored by generation (ROUGE-L, exact match, token F1); loss and
    perplexity always use the whole test split. null: all of them."""
    samples: int = Field(5, ge=0)
    """Answers shown side by side (base vs tuned) in the report."""


Contender = Literal["base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag"]
CONTENDERS: tuple[str, ...] = ("base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag")


class RetrievalConfig(StrictModel):
    """How the few-shot and RAG contenders find what they put in the prompt."""

    ranking: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """hybrid: BM25 and dense embeddings fused by reciprocal rank; or one of them."""
    embedder: str = "builtin:minilm"
    """The sentence embedding model of dense ranking: builtin:minilm, a
    sentence-transformers folder or a Hugging Face id in the local cache."""
    top_k: int = Field(3, ge=1, le=50)
    """Passages put in a RAG prompt (fewer when they would not fit max_prompt_tokens)."""
    shots: int = Field(3, ge=1, le=20)
    """Training pairs put in a few-shot prompt, most similar first."""
    chunk_size: int = Field(100, ge=8, le=4000)
    """Words per passage of data.documents (a CJK character counts as a word)."""
    chunk_overlap: int = Field(20, ge=0)
    """Words shared by neighbouring passages, so a fact cut by a boundary is whole in one."""
    max_prompt_tokens: int = Field(1024, ge=64, le=131072)
    """Longest prompt a contender may write (within the model's context, less the answer's
    tokens); passages are cut to fit, the question never."""

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be below chunk_size "
                f"({self.chunk_size}); e.g. chunk_overlap: {self.chunk_size // 5}"
            )
        return self


class ForgettingGuard(StrictModel):
    """Catastrophic forgetting: measured on reference data before training and at every
    evaluation (causal-lm: perplexity of reference prose; text encoders: drift of their
    sentence representations, 1 - linear CKA; vision: share of reference photos whose
    original ImageNet class changed)."""

    reference: str | None = "builtin:general-en"
    """builtin:general-en (public-domain English prose, bundled), a .txt of paragraphs, or a
    table with a text column; null turns the guard off."""
    max_increase: float | None = Field(None, gt=0)
    """Past this the action is taken. causal-lm: relative perplexity increase (default 0.10,
    i.e. +10%); text-classification: representation drift (default 0.5); vision: share of
    changed ImageNet predictions (default 0.5)."""
    action: Literal["warn", "stop", "rollback"] = "warn"
    """warn: say so and go on; stop: end training (the best weights so far are kept);
    rollback: go back to the best weights among the evaluations under the threshold (the
    starting weights when there were none), then end training or, with `retries`, go on
    from there with `mitigation`. With stop and rollback, `rescue` then looks for a
    better model under the threshold."""
    every: int | Literal["auto"] = "auto"
    """Optimizer steps between forgetting measurements; each is also a validation
    evaluation, so every measured point is a candidate for the kept weights. auto: with
    stop or rollback, four per epoch (at most every train.eval_every steps); with warn, at
    train.eval_every. Measurements at this cadence save no checkpoint and do not use up
    early-stopping patience."""
    rescue: Literal["interpolate", "none"] = "interpolate"
    """With stop or rollback, once the weights went past the threshold: interpolate: search
    the coefficient a of start + a * (tuned - start) (WiSE-FT, Wortsman et al. 2022; for
    LoRA a scaling of the adapter) by bisection on the forgetting measure, and keep the
    best under the threshold of the interpolations and the checkpoints by validation
    score; none: keep the best checkpoint under the threshold."""
    rescue_steps: int = Field(5, ge=1, le=12)
    """Bisection steps of the rescue (each measures forgetting and validation once): 5
    finds the coefficient to within 1/32."""
    retries: int = Field(0, ge=0, le=5)
    """With rollback: how many times training goes on from the restored weights with
    `mitigation` instead of ending the run."""
    mitigation: list[Literal["lower_lr", "l2_sp"]] = Field(
        default_factory=lambda: ["lower_lr", "l2_sp"]
    )
    """What a retry changes: lower_lr multiplies the learning rate by `retry_lr_factor`;
    l2_sp pulls the weights towards their starting values (train.l2_sp, or 0.1 when it is
    0). train.replay, when set, goes on as it was."""
    retry_lr_factor: float = Field(0.3, gt=0, lt=1)
    """lower_lr's factor on the learning rate at each retry."""

    @model_validator(mode="after")
    def _every_positive(self) -> ForgettingGuard:
        if isinstance(self.every, int) and self.every < 1:
            raise ValueError("every must be a positive number of steps or 'auto'")
        if self.retries and self.action != "rollback":
            raise ValueError("retries applies to action: rollback (set action: rollback)")
        return self


class OverfittingGuard(StrictModel):
    """Validation loss rising while training loss falls: the model learns the training set
    by heart."""

    patience: int = Field(2, ge=1)
    """Consecutive evaluations in which validation loss rose while training loss fell."""
    action: Literal["warn", "stop"] = "stop"
    """stop: end training and restore the best-validation weights."""


class Guards(StrictModel):
    """The source document's pitfalls, checked by tunesmith itself."""

    data_quality: Literal["error", "warn", "off"] = "error"
    """Before training, `tunesmith data check` runs on the recipe's data. error: refuse to
    train on error-level findings (duplicates across splits, conflicting labels, empty rows,
    ...); warn: train anyway and record them in quality.json and the report; off: skip it."""
    label_issues: bool = True
    """Look for likely label errors (out-of-fold predictions of the frozen pre-trained model
    + a linear model, ranked by cleanlab); costs one pass of the model over the data."""
    forgetting: ForgettingGuard | None = Field(default_factory=ForgettingGuard)
    """null: do not measure forgetting."""
    overfitting: OverfittingGuard | None = Field(default_factory=OverfittingGuard)
    """null: no overfitting guard (early stopping still watches the validation metric)."""

    @field_validator("data_quality", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false


class TuneRange(StrictModel):
    """A range of values for one key of `tune:` (a list of values is a set of candidates)."""

    low: float
    """Smallest value tried."""
    high: float
    """Largest value tried."""
    log: bool = False
    """Draw on a log scale (learning rates): as many trials between 1e-5 and 1e-4 as between
    1e-4 and 1e-3."""
    step: float | None = Field(None, gt=0)
    """Only values low, low + step, ... (whole numbers when low, high and step are)."""
    relative: bool = False
    """train.learning_rate only: low and high are multiples of the chosen method's own
    default learning rate (1e-3 for lora, 5e-5 for full ...), so one range fits every method
    a search tries."""

    @model_validator(mode="after")
    def _ordered(self) -> TuneRange:
        if self.high < self.low:
            raise ValueError(f"high ({self.high:g}) is below low ({self.low:g}); swap them")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low above 0")
        if self.log and self.step is not None:
            raise ValueError("a log range takes no step; remove step or log")
        return self

    @property
    def whole(self) -> bool:
        """Whole numbers: low, high (and step) written without a fraction."""
        return all(
            float(v).is_integer() and not isinstance(v, bool)
            for v in (self.low, self.high, self.step or 1)
        )


TuneValue = Annotated[
    Annotated[list[Any], Field(min_length=1), Tag("candidates")]
    | Annotated[TuneRange, Tag("range")],
    Discriminator(lambda value: "range" if isinstance(value, dict | TuneRange) else "candidates"),
]
"""A `tune:` key's value: a list of candidates, or a range (a mapping)."""


REPORT_LANGUAGES: tuple[str, ...] = ("en", "ja")


class ReportConfig(StrictModel):
    """The run's report.html: its language and what an hour of compute costs."""

    language: Literal["en", "ja"] = "en"
    """en: English; ja: Japanese (日本語). Every page tunesmith writes for the run (report,
    tune, compare) uses it; `tunesmith report RUN --lang ja` re-renders a finished run in
    another language without training."""
    price_per_hour: float | None = Field(None, ge=0)
    """The price of an hour of the machine the run used (in the reader's currency); when
    set, Cost turns wall time into money."""
    currency: str = Field("USD", min_length=1, max_length=8)
    """The currency of price_per_hour (USD, EUR, JPY, ...), as ISO 4217 writes it."""


TRACKING_BACKENDS: tuple[str, ...] = ("none", "mlflow", "tensorboard")


class TrackingConfig(StrictModel):
    """Experiment tracking: the resolved recipe as parameters, every evaluation's metrics
    by step, the final metrics, and metrics.json and the report as artifacts, recorded in
    MLflow or TensorBoard beside the run folder (which stays the record tunesmith reads).
    `tracking: mlflow` is short for `tracking: {backend: mlflow}`; a `tunesmith tune`
    search is one run with a nested run per trial."""

    backend: Literal["none", "mlflow", "tensorboard"] = "none"
    """none: nothing beyond the run folder; mlflow: an MLflow run (a local SQLite store by
    default, or any tracking server); tensorboard: event files for `tensorboard --logdir`."""
    uri: str | None = None
    """mlflow: the tracking URI (http://host:5000, sqlite:///path/mlflow.db, databricks,
    ...); default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory.
    tensorboard: the log folder that gets one subfolder per run; default RUN/tensorboard.
    `--tracking-uri` overrides it."""
    experiment: str = Field("tunesmith", min_length=1, max_length=500)
    """mlflow: the experiment the runs are recorded in (made when missing)."""


class Recipe(StrictModel):
    task: str = "text-classification"
    """The task kind: text-classification, causal-lm, image-classification, or any kind
    registered in tasks/ (`tunesmith recipe keys` lists them)."""
    model: str | None = None
    """builtin:NAME, a Hugging Face model id (already in the local cache) or a local folder;
    default: builtin:minilm, builtin:smollm2 or builtin:efficientnet-lite0 by task."""
    data: DataConfig
    preprocess: Preprocess = Field(default_factory=Preprocess)
    method: MethodConfig = Field(default_factory=lambda: get_method("lora").settings(name="lora"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    guards: Guards = Field(default_factory=Guards)
    compare: list[Contender] | None = None
    """Generative tasks: the options scored beside the fine-tune on the same test prompts:
    base, few-shot (k most similar training pairs in the prompt), rag (retrieved passages
    of data.documents, else of the training pairs), fine-tuned, fine-tuned+rag. Default:
    all of them for instruction data; [] scores only base and fine-tuned."""
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    tune: dict[str, TuneValue] | None = None
    """`tunesmith tune`'s search space: recipe keys in dotted form (model, method.name,
    method.r, train.learning_rate, train.epochs, train.batch_size, preprocess.max_length,
    ...), each a list of candidates or a range {low, high, log, step} ([low, high, log] for
    short); a method key the
    chosen method lacks is left out of that trial. Default: the task kind's space
    (`tunesmith tune` prints it). `tunesmith train` ignores it."""
    output_dir: str | None = None
    """Run folder; default runs/<recipe file name>."""

    @field_validator("tune", mode="before")
    @classmethod
    def _log_range_shorthand(cls, value: Any) -> Any:
        """[low, high, log] is short for the range {low, high, log: true}."""
        if not isinstance(value, dict):
            return value
        return {
            key: {"low": v[0], "high": v[1], "log": True}
            if isinstance(v, list) and len(v) == 3 and v[2] == "log"
            else v
            for key, v in value.items()
        }

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracking_shorthand(cls, value: Any) -> Any:
        """`tracking: mlflow` is `{backend: mlflow}`; null or false (YAML's bare `off`) is
        none; a misspelt backend names the close one."""
        if value is None or value is False:
            return {"backend": "none"}
        if not isinstance(value, str):
            if isinstance(value, dict | TrackingConfig):
                return value
            raise ValueError(
                f"expected {', '.join(TRACKING_BACKENDS)} or a mapping {{backend, uri, "
                f"experiment}} (got {value!r})"
            )
        if value not in TRACKING_BACKENDS:
            close = difflib.get_close_matches(value, TRACKING_BACKENDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown tracking backend {value!r}; {hint}choose one of "
                f"{', '.join(TRACKING_BACKENDS)}"
            )
        return {"backend": value}

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The recipe file this was read from (an input the run must never overwrite)."""
        return self._source

    @field_validator("task")
    @classmethod
    def _registered_task(cls, value: str) -> str:
        from tunesmith.tasks.registry import task_kinds

        kinds = task_kinds()
        if value not in kinds:
            close = difflib.get_close_matches(value, list(kinds), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown task {value!r}; {hint}choose one of {', '.join(kinds)}")
        return value

    @model_validator(mode="after")
    def _fit_the_task(self) -> Recipe:
        from tunesmith.tasks.registry import task_kinds

        kind = task_kinds()[self.task]
        if self.method.name not in kind.methods:
            fits = [k.name for k in task_kinds().values() if self.method.name in k.methods]
            raise ValueError(
                f"method {self.method.name!r} is for {' or '.join(fits)}, not {self.task}; "
                f"choose another method.name ({', '.join(kind.methods)})"
            )
        allowed = kind.metrics
        stopping = self.train.early_stopping
        auto = kind.auto_epochs
        self.train._auto_epochs = (auto.target_steps, auto.fewest, auto.most)
        if stopping is not None and stopping.relative_min_delta is None:
            stopping.relative_min_delta = kind.relative_min_delta
        if stopping is not None and stopping.metric is None:
            stopping.metric = allowed[0]
        elif stopping is not None and stopping.metric not in allowed:
            raise ValueError(
                f"train.early_stopping.metric {stopping.metric!r} does not fit {self.task}; "
                f"use {' or '.join(allowed)}"
            )
        images = kind.inputs == "image"
        foreign = self.preprocess.model_fields_set & (
            TEXT_PREPROCESS_KEYS if images else IMAGE_PREPROCESS_KEYS
        )
        if foreign:
            what = "text" if images else "image"
            raise ValueError(
                f"preprocess: {', '.join(sorted(foreign))} apply to {what} tasks, not "
                f"{self.task}; remove them"
            )
        refused = self.preprocess.model_fields_set & CLASSIFIER_TEXT_KEYS
        if kind.generative and refused:
            raise ValueError(
                f"preprocess: {', '.join(sorted(refused))} would teach a {self.task} model to "
                "write without capitals or stop words, so they apply to classifiers only; "
                "remove them (preprocess.unicode applies here)"
            )
        if self.preprocess.unicode is None and not images:
            self.preprocess.unicode = kind.default_unicode or "nfkc"
        if self.preprocess.max_length is None and not images:
            self.preprocess.max_length = kind.default_max_length or 512
        if self.preprocess.max_length == "auto" and kind.default_max_length != "auto":
            raise ValueError(
                f"preprocess.max_length: auto is for the text classifiers; {self.task} "
                f"needs a number of tokens (default {kind.default_max_length or 512})"
            )
        if self.model is None:
            self.model = kind.default_model
        if self.preprocess.denoise == "median" and self.preprocess.denoise_size % 2 == 0:
            raise ValueError(
                f"preprocess.denoise_size: a median filter needs an odd window, got "
                f"{self.preprocess.denoise_size}; use {self.preprocess.denoise_size + 1}"
            )
        if self.train.replay and not kind.generative:
            raise ValueError(
                "train.replay mixes reference text into an LLM's training; it applies to "
                "generative tasks (causal-lm) only. Against forgetting in a classifier use "
                "train.l2_sp or train.layer_decay"
            )
        if self.train.replay and (
            self.guards.forgetting is None or not self.guards.forgetting.reference
        ):
            raise ValueError(
                "train.replay draws from guards.forgetting.reference; set one "
                "(e.g. builtin:general-en)"
            )
        if self.compare is None:
            self.compare = list(kind.contenders)
        foreign = [c for c in self.compare if c not in kind.contenders]
        if foreign:
            offered = ", ".join(kind.contenders) or "none"
            raise ValueError(
                f"compare: {', '.join(foreign)} do not apply to {self.task} (it offers: "
                f"{offered}); remove them"
            )
        feeding = [
            f"data.{key}"
            for key in ("documents", "source_column", "questions")
            if getattr(self.data, key)
        ]
        if feeding and not kind.contenders:
            raise ValueError(
                f"{', '.join(feeding)} feed the RAG contenders, which {self.task} does not "
                "have; remove them"
            )
        if self.train.batchnorm == "update" and not images:
            raise ValueError("train.batchnorm: update is for image models")
        if self.train.head_init == "probe" and not images:
            raise ValueError("train.head_init: probe is for image-classification; use auto")
        return self

    @property
    def learning_rate(self) -> float:
        return self.train.learning_rate or self.method.default_learning_rate

    @property
    def head_learning_rate(self) -> float:
        return self.train.head_learning_rate or max(self.learning_rate, 1e-3)

    def to_yaml(self) -> str:
        """The resolved recipe; preprocess keys of the other kind of task are left out."""
        from tunesmith.tasks.registry import task_kinds

        data = self.model_dump(mode="json")
        kind = task_kinds()[self.task]
        if kind.inputs == "image":
            foreign = TEXT_PREPROCESS_KEYS
        else:
            foreign = IMAGE_PREPROCESS_KEYS | (CLASSIFIER_TEXT_KEYS if kind.generative else set())
        data["preprocess"] = {k: v for k, v in data["preprocess"].items() if k not in foreign}
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------
# Loading, overrides and readable errors


def load_recipe(
    source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = ()
) -> Recipe:
    """Read a recipe (a YAML path or a dict), apply `key.sub=value` overrides, validate it.

    Relative data paths are resolved against the working directory first, then the
    recipe's own folder, and stored absolute so the saved recipe re-runs from anywhere.
    """
    if isinstance(source, dict):
        raw, origin, base_dir = dict(source), "recipe", Path.cwd()
    else:
        path = Path(source)
        raw, origin, base_dir = _read_yaml(path), str(path), path.parent
    for override in overrides:
        _apply_override(raw, override)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as error:
        raise UserError(format_validation_error(error, origin)) from None
    _resolve_data_paths(recipe, base_dir)
    if not isinstance(source, dict):
        recipe._source = Path(source).absolute()
    if recipe.output_dir is None and not isinstance(source, dict):
        recipe.output_dir = str(Path("runs") / Path(source).stem)
    return recipe


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(
            f"recipe {path}: file not found; check the path (see examples/ for recipes)"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(f"recipe {path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raise UserError(f"recipe {path}: the file is empty; start from a recipe in examples/")
    if not isinstance(raw, dict):
        raise UserError(f"recipe {path}: expected a mapping of keys (task, model, data, ...)")
    return raw


def _apply_override(raw: dict[str, Any], override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {override!r}: expected key.sub=value, e.g. --set train.epochs=5")
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise UserError(f"--set {override!r}: {part!r} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        node[parts[-1]] = value


def _resolve_data_paths(recipe: Recipe, base_dir: Path) -> None:
    for split in ("train", "validation", "test", "documents", "questions"):
        value = getattr(recipe.data, split)
        if value is None or Path(value).is_absolute():
            continue
        candidates = [Path.cwd() / value, base_dir / value]
        found = next((c for c in candidates if c.exists()), candidates[0])
        setattr(recipe.data, split, str(found.resolve()))


def format_validation_error(error: ValidationError, origin: str) -> str:
    """One line per key with problems, each with its key path and a hint where one helps."""
    problems: dict[str, list[str]] = {}
    for item in error.errors():
        loc = _clean_location(item["loc"], item["type"])
        message = _describe(item, loc)
        messages = problems.setdefault(".".join(loc) or "(top level)", [])
        if message not in messages:
            messages.append(message)
    # a union (e.g. a number or 'auto') fails once per member: one line says all
    lines = [f"  - {key}: {' or '.join(messages)}" for key, messages in problems.items()]
    count = len(lines)
    header = f"{origin}: {count} problem{'s' if count > 1 else ''} in the recipe:"
    return "\n".join([header, *lines])


def _clean_location(loc: tuple[Any, ...], kind: str) -> list[str]:
    """The key path as the user wrote it: pydantic's union member tags (method.lora.r,
    train.epochs.constrained-float) are dropped by walking the recipe's own fields."""
    model: Any = Recipe
    out = []
    for i, part in enumerate(loc):
        if isinstance(model, type) and isinstance(part, str) and part in model.model_fields:
            out.append(part)
            model = "method" if part == "method" else _model_of(model.model_fields[part].annotation)
        elif model == "method" and part in methods():
            model = methods()[part].settings
        elif out == ["tune"] and i == 1:  # the searched key, as written
            out.append(str(part))
            model = TuneRange
        elif isinstance(part, int) or (kind == "extra_forbidden" and i == len(loc) - 1):
            out.append(str(part))
    return out


def _describe(item: dict[str, Any], loc: list[str]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], item)
        close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"unknown key; {hint}"
    if kind == "union_tag_invalid":
        tag = item.get("ctx", {}).get("tag")
        close = difflib.get_close_matches(str(tag), method_names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown method {tag!r}; {hint}choose one of {', '.join(method_names())}"
    if kind == "union_tag_not_found":
        return f"missing 'name'; choose one of {', '.join(method_names())}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = item.get("ctx", {}).get("expected", "")
        return f"{item['input']!r} is not allowed; use {expected}"
    message = item["msg"].removeprefix("Value error, ")
    if "input" in item and kind not in ("value_error", "model_type"):
        return f"{message} (got {item['input']!r})"
    return message


def _allowed_keys(parent: list[str], item: dict[str, Any]) -> list[str]:
    model: type[BaseModel] | None = Recipe
    for part in parent:
        if model is None:
            break
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field else None
        if part == "method":
            tags = [p for p in item["loc"] if p in methods()]
            model = methods()[tags[0]].settings if tags else None
    if model is None:
        return []
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
