"""Training data for causal language models: instruction/chat examples or raw text.

Four formats, detected from the columns unless `data.format` names one:

- chat: a `messages` (role/content) or `conversations` (ShareGPT from/value) column, with
  an optional top-level `system` and `tools` column; OpenAI's `tool` messages and assistant
  `tool_calls`, and ShareGPT's `function_call` / `observation` turns, are kept;
- alpaca: `instruction` and `output`, optional `input`, `system` and `history`;
- prompt-completion: a prompt column (prompt, question, query) and a response column
  (completion, response, answer);
- text: raw text rows (`data.text_column`), or a folder of .txt/.md/.html documents.

Instruction and chat examples become a list of messages ending with the assistant's answer;
raw text stays text. A LLaMA-Factory `dataset_info.json` beside the file (or in the folder
`data.train` names) gives the format and column names (`data.dataset` picks its entry).
Every problem is a UserError naming the recipe key, file, row and fix.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.split import train_subset
from tunesmith.data.tables import READERS, check_utf8, read_table
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig

Message = dict[str, Any]
"""{"role": "system" | "user" | "assistant" | "tool", "content": str}; an assistant tool call
also has `tool_calls` ([{"type": "function", "id"?, "function": {"name", "arguments": dict}}],
its content may be ""), a tool result may have `tool_call_id` and `name`. The row's tool
definitions (a top-level `tools` list) ride on its first message as `tools`: the chat
template gets them (tasks/causal_lm/chat.py)."""

FORMATS = ("alpaca", "chat", "prompt-completion", "text")
MESSAGES_COLUMNS = ("messages", "conversations")
PROMPT_COLUMNS = ("prompt", "question", "query")
RESPONSE_COLUMNS = ("completion", "response", "answer")
DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
ROLE_NAMES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "ipython": "tool",
}
"""Accepted roles (OpenAI style and ShareGPT `from` values) and what they become; a ShareGPT
`function_call` turn becomes an assistant message with `tool_calls`."""
FUNCTION_CALL = "function_call"
DATASET_INFO = "dataset_info.json"
MAX_REPORTED = 10


@dataclass(frozen=True)
class ChatTags:
    """How a conversation's messages name their role and text, and the role values (a
    LLaMA-Factory entry's `tags`); the defaults read OpenAI role/content and ShareGPT
    from/value messages."""

    role: str | None = None
    """The role key; None: `role`, else ShareGPT `from`."""
    content: str | None = None
    """The text key; None: `content`, else ShareGPT `value`."""
    roles: dict[str, str] = field(default_factory=dict)
    """Role values and what they become (system, user, assistant, tool, function_call),
    before ROLE_NAMES."""


@dataclass
class LMExample:
    """One example: a conversation (instruction and chat formats) or raw text (format text).

    `row` is the 0-based data row in the split's source as read; for a folder, the index of
    the document in `list_documents(folder)` order."""

    row: int
    messages: list[Message] | None = None
    text: str | None = None
    source: str | None = None
    """The document that answers the question (data.source_column), for retrieval's
    recall@k; None when the data does not say."""


@dataclass
class LMSplit:
    examples: list[LMExample]
    source: str
    """The file or folder read."""

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class LMSplits:
    train: LMSplit
    validation: LMSplit
    test: LMSplit
    format: str
    """The resolved format: alpaca, chat, prompt-completion or text."""

    def split(self, name: str) -> LMSplit:
        return getattr(self, name)


def load_causal_lm(data: DataConfig, seed: int) -> LMSplits:
    """Read the recipe's files (or train folder); split `train` where validation/test are not
    given. Validation and test files must have the format of `train`."""
    train, fmt = _read_source(data.train, data, "data.train", data.format, "data.format")
    splits = {"train": train}
    for name in ("validation", "test"):
        path = getattr(data, name)
        if path is not None:
            origin = "data.format" if data.format != "auto" else "data.train"
            splits[name] = _read_source(path, data, f"data.{name}", fmt, origin)[0]

    missing = [name for name in ("validation", "test") if name not in splits]
    if missing:
        examples = train.examples
        total = len(examples)
        counts = {name: int(total * getattr(data, f"{name}_size") + 0.5) for name in missing}
        for name, count in counts.items():
            if count == 0:
                raise UserError(
                    f"data: the {name} split is empty: {data.train} has {total} usable "
                    f"example(s) and data.{name}_size is {getattr(data, f'{name}_size')}. "
                    f"Give data.{name} a file, add data, or raise data.{name}_size to at "
                    f"least {_min_share(total)}"
                )
        if total - sum(counts.values()) < 1:
            raise UserError(
                f"data: the train split is empty: {data.train} has {total} usable example(s) "
                f"and {' + '.join(str(c) for c in counts.values())} are held out for "
                f"{' and '.join(counts)}. Give data.validation / data.test files, add data, "
                "or lower data.validation_size / data.test_size"
            )
        order = np.random.default_rng(seed).permutation(total)
        start = 0
        for name in missing:
            chosen = np.sort(order[start : start + counts[name]])
            splits[name] = LMSplit([examples[i] for i in chosen], train.source)
            start += counts[name]
        kept = np.sort(order[start:])
        splits["train"] = LMSplit([examples[i] for i in kept], train.source)
    if data.train_fraction < 1:  # a nested share of train; the held-out splits as they are
        whole = splits["train"].examples
        share = train_subset([0] * len(whole), data.train_fraction, seed)
        splits["train"] = LMSplit([whole[i] for i in share], splits["train"].source)
    return LMSplits(**splits, format=fmt)


def load_lm_file(
    path: str, data: DataConfig, role: str = "--data", format: str | None = None
) -> LMSplit:
    """One extra file or folder (e.g. `tunesmith eval RUN --data FILE`); `format` is the
    run's resolved format, None: data.format (auto: detected from the columns)."""
    requested = format or data.format
    origin = "the run's format" if format else "data.format"
    return _read_source(path, data, role, requested, origin)[0]


def read_prompts(inputs: list[str], data: DataConfig) -> list[list[Message]]:
    """Prompt conversations for `tunesmith predict`, in the order given.

    Each input is a prompt text, or an existing file: .txt has one prompt per non-empty
    line; csv/tsv/jsonl/json/parquet rows may be in any instruction format (chat, alpaca,
    prompt-completion, or a `prompt` / data.text_column column). A conversation's final
    assistant answer, if any, is dropped: the model writes it. data.system_prompt applies."""
    prompts: list[list[Message]] = []
    for item in inputs:
        path = Path(item)
        if len(item) < 4096 and path.is_file():
            if path.suffix.lower() == ".txt":
                lines = read_utf8(path, "predict").splitlines()
                prompts.extend(
                    with_system_prompt([{"role": "user", "content": line.strip()}], data)
                    for line in lines
                    if line.strip()
                )
                continue
            if path.suffix.lower() not in READERS:
                supported = ", ".join([".txt", *sorted(READERS)])
                raise UserError(
                    f"predict: {path}: unsupported file type {path.suffix!r}; use {supported} "
                    "(.txt: one prompt per line)"
                )
            prompts.extend(_file_prompts(path, data))
        elif item.strip():
            prompts.append(with_system_prompt([{"role": "user", "content": item.strip()}], data))
    if not prompts:
        raise UserError("predict: nothing to predict; give prompts or files of prompts")
    return prompts


def document_names(split: LMSplit) -> list[str]:
    """A name for each raw-text example: its file relative to the folder read, or its row."""
    folder = Path(split.source)
    if folder.is_dir():
        paths = list_documents(folder)
        return [paths[ex.row].relative_to(folder).as_posix() for ex in split.examples]
    return [f"{folder.name} row {ex.row}" for ex in split.examples]


def list_documents(folder: str | Path, suffixes: tuple[str, ...] = DOCUMENT_SUFFIXES) -> list[Path]:
    """The documents a text folder holds: files with one of `suffixes` (default
    .txt/.md/.markdown/.html/.htm) at any depth, hidden files and folders skipped, sorted by
    relative path (an example's `row` indexes this list)."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in suffixes:
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def html_to_text(html: str) -> str:
    """Plain text of an HTML page: scripts and styles dropped, one blank line between blocks."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    parser.flush()
    return "\n\n".join(parser.paragraphs)


# ---------------------------------------------------------------------------- reading


def _read_source(
    path: str, data: DataConfig, role: str, requested: str, origin: str
) -> tuple[LMSplit, str]:
    """A file or folder as examples, and the format they were read in."""
    layout = _dataset_info_layout(path, data, role)
    if layout is not None:
        return _read_layout(layout, data, role, requested, origin)
    if Path(path).is_dir():
        if requested not in ("auto", "text"):
            raise UserError(
                f"{role}: {path} is a folder of documents, which is raw text (format text), "
                f"but {origin} is {requested!r}; give a csv, jsonl, json or parquet file in "
                f"that format, or set data.format: text"
            )
        return LMSplit(_read_documents(Path(path), role), str(path)), "text"
    frame = read_table(path, role=role)
    fmt, columns = _resolve_format(frame, data, path, role, requested)
    examples = _frame_examples(frame, fmt, columns, data, path, role, prompts=False)
    return LMSplit(examples, str(path)), fmt


@dataclass(frozen=True)
class _Layout:
    """A LLaMA-Factory dataset_info.json entry: the file it describes, its format and the
    columns (field -> column; `explicit`: named in the entry, so they must be there)."""

    file: Path
    info: Path
    name: str
    format: str
    columns: dict[str, str]
    explicit: frozenset[str]
    tags: ChatTags | None


_LF_COLUMNS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output"},
    "sharegpt": {"messages": "messages"},
}
"""LLaMA-Factory column keys of each formatting and our field names (plus system, tools,
and history for alpaca)."""
_LF_DEFAULTS = {"instruction": "instruction", "input": "input", "output": "output"}
_LF_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
_LF_ROLES = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": FUNCTION_CALL,
    "system_tag": "system",
}


def _dataset_info_layout(path: str, data: DataConfig, role: str) -> _Layout | None:
    """The LLaMA-Factory entry for `path`: a folder holding dataset_info.json (the entry
    data.dataset names, or its only one), or a file beside one (data.dataset's entry, or the
    one whose file_name is this file); None when no dataset_info.json applies."""
    target = Path(path)
    folder = target.is_dir()
    info = (target if folder else target.parent) / DATASET_INFO
    name = data.dataset if role == "data.train" else None
    if not info.is_file():
        if name:
            where = "in the folder" if folder else "beside"
            raise UserError(
                f"data.dataset: {name!r} names a LLaMA-Factory dataset, but there is no "
                f"{DATASET_INFO} {where} {path}; put the dataset_info.json there (or point "
                "data.train at the folder that holds it), or remove data.dataset"
            )
        return None
    try:
        entries = json.loads(read_utf8(info, role))
    except json.JSONDecodeError as error:
        raise UserError(
            f"{role}: {info} is not valid JSON ({error.msg}, line {error.lineno}); fix it, "
            "or move it away to read the data by its own columns"
        ) from None
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise UserError(
            f"{role}: {info} is not a LLaMA-Factory dataset_info.json (an object of "
            '"name": {"file_name": ..., "formatting": ..., "columns": ...} entries); fix it, '
            "or move it away"
        )
    listed = ", ".join(entries) or "none"
    if name:
        if name not in entries:
            close = difflib.get_close_matches(name, list(entries), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"data.dataset: {info} has no entry {name!r}; {hint}its entries are: "
                f"{listed}. Set data.dataset to one of them"
            )
    elif folder:
        named = [key for key, entry in entries.items() if "file_name" in entry]
        if len(named) != 1:
            raise UserError(
                f"{role}: {path} holds a {DATASET_INFO} with {len(named)} file entries "
                f"({listed}); set data.dataset to the one to train on"
            )
        name = named[0]
    else:
        matches = [k for k, entry in entries.items() if entry.get("file_name") == target.name]
        if not matches:
            return None  # it describes other files: this one is read by its own columns
        if len(matches) > 1:
            raise UserError(
                f"{role}: {info} has {len(matches)} entries for {target.name} "
                f"({', '.join(matches)}); set data.dataset to the one to use"
            )
        name = matches[0]
    return _layout(entries[name], name, info, target, folder)


def _layout(entry: dict, name: str, info: Path, target: Path, folder: bool) -> _Layout:
    where = f"{info}: entry {name!r}"
    file = target
    if folder:
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise UserError(
                f"data.dataset: {where} has no file_name (hub or script datasets are not "
                "read); save the data as a json, jsonl, csv or parquet file beside "
                f"{DATASET_INFO} and name it in file_name"
            )
        file = target / file_name
        if not file.is_file():
            raise UserError(
                f"data.dataset: {where} names the file {file_name!r}, but {file} "
                f"{'is a folder' if file.is_dir() else 'does not exist'}; put the data file "
                "there (one file), or fix file_name"
            )
    formatting = entry.get("formatting", "alpaca")
    if formatting not in _LF_COLUMNS:
        raise UserError(
            f"data.dataset: {where} has formatting {formatting!r}; tunesmith reads alpaca "
            "and sharegpt entries. Convert the data, or pick another entry"
        )
    given = entry.get("columns") or {}
    tags_given = entry.get("tags") or {}
    for key, value in (("columns", given), ("tags", tags_given)):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise UserError(f"data.dataset: {where}: {key!r} must map names to column names")
    known = {*_LF_COLUMNS[formatting], "system", "tools"} | (
        {"history"} if formatting == "alpaca" else set()
    )
    ignored = sorted(set(given) - known)
    if ignored:
        raise UserError(
            f"data.dataset: {where} maps the column(s) {', '.join(ignored)}, which tunesmith "
            f"does not read for {formatting} data (it reads {', '.join(sorted(known))}); "
            "remove them from columns"
        )
    if formatting == "alpaca":
        columns, explicit = dict(_LF_DEFAULTS), set()
        for key, ours in _LF_COLUMNS["alpaca"].items():
            if key in given:
                columns[ours] = given[key]
                explicit.add(ours)
        fmt, tags = "alpaca", None
    else:
        columns = {"messages": given.get("messages", "conversations")}
        explicit = {"messages"}
        tag = {**_LF_TAGS, **tags_given}
        roles = {tag[key]: ours for key, ours in _LF_ROLES.items()}
        fmt, tags = "chat", ChatTags(tag["role_tag"], tag["content_tag"], roles)
    for key in ("system", "tools", "history"):
        if key in given:
            columns[key] = given[key]
            explicit.add(key)
    return _Layout(file, info, name, fmt, columns, frozenset(explicit), tags)


def _read_layout(
    layout: _Layout, data: DataConfig, role: str, requested: str, origin: str
) -> tuple[LMSplit, str]:
    """The file of a LLaMA-Factory entry, read with its columns and tags."""
    if requested not in ("auto", layout.format):
        raise UserError(
            f"{role}: {layout.info} describes {layout.file} ({layout.name!r}) as "
            f"{layout.format} data, but {origin} is {requested!r}; remove data.format, or "
            f"give a file in that format"
        )
    path = str(layout.file)
    frame = read_table(path, role=role)
    present = set(map(str, frame.columns))
    columns = {}
    for key, column in layout.columns.items():
        if column in present:
            columns[key] = column
        elif key in layout.explicit or key in ("instruction", "output", "messages"):
            close = difflib.get_close_matches(column, sorted(present), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"{role}: {layout.info} entry {layout.name!r} reads {key!r} from the column "
                f"{column!r}, but {path} has no such column; {hint}its columns are: "
                f"{_column_list(frame)}. Fix the entry's columns, or rename the column"
            )
    examples = _frame_examples(
        frame, layout.format, columns, data, path, role, prompts=False, tags=layout.tags
    )
    return LMSplit(examples, path), layout.format


def _read_documents(folder: Path, role: str) -> list[LMExample]:
    paths = list_documents(folder)
    if not paths:
        suffixes = ", ".join(DOCUMENT_SUFFIXES)
        raise UserError(
            f"{role}: the folder {folder} holds no documents ({suffixes} files, searched "
            "recursively); put text files there, or give a csv, jsonl, json or parquet file"
        )
    examples = []
    for row, path in enumerate(paths):
        try:
            raw = read_utf8(path, role)
        except UserError as error:
            raise UserError(f"{error}; or remove it from the folder") from None
        text = html_to_text(raw) if path.suffix.lower() in (".html", ".htm") else raw
        text = text.strip()
        if text:  # empty documents are skipped: there is nothing to learn from them
            examples.append(LMExample(row=row, text=text))
    if not examples:
        raise UserError(f"{role}: every document in {folder} is empty")
    return examples


def read_utf8(path: Path, role: str) -> str:
    """A text file's content; not UTF-8 is a UserError naming the line of the first bad byte
    and how to save the file as UTF-8 (a replacement character would train on garbage)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        check_utf8(path, role, path.suffix.lstrip(".").lower() or "txt")  # names the line
        raise UserError(
            f"{role}: {path} is not UTF-8 text ({error.reason}); save it as UTF-8"
        ) from None


def _resolve_format(
    frame: pd.DataFrame, data: DataConfig, path: str, role: str, requested: str
) -> tuple[str, dict[str, str]]:
    """The format and the columns that hold each field (instruction, messages, prompt ...)."""
    present = set(map(str, frame.columns))
    fmt = requested
    if fmt == "auto":
        if data.messages_column or present & set(MESSAGES_COLUMNS):
            fmt = "chat"
        elif {"instruction", "output"} <= present:
            fmt = "alpaca"
        elif (
            data.prompt_column
            or data.response_column
            or (present & set(PROMPT_COLUMNS) and present & set(RESPONSE_COLUMNS))
        ):
            fmt = "prompt-completion"
        elif data.text_column in present:
            fmt = "text"
        else:
            raise UserError(
                f"{role}: {path}: cannot tell the data format from its columns "
                f"({_column_list(frame)}). causal-lm data needs one of: "
                "chat: a 'messages' or 'conversations' column; "
                "alpaca: 'instruction' and 'output' (optional 'input', 'system'); "
                "prompt-completion: a prompt column (prompt, question or query) and a response "
                "column (completion, response or answer); "
                f"text: a {data.text_column!r} column. Rename the columns, or set "
                "data.format and its column (data.messages_column, data.prompt_column, "
                "data.response_column or data.text_column)"
            )

    def pick(configured: str | None, defaults: tuple[str, ...], key: str) -> str:
        if configured:
            if configured not in present:
                raise _missing_column(frame, path, role, fmt, [configured], key)
            return configured
        for name in defaults:
            if name in present:
                return name
        raise _missing_column(frame, path, role, fmt, list(defaults), key)

    if fmt == "chat":
        columns = {"messages": pick(data.messages_column, MESSAGES_COLUMNS, "messages_column")}
        columns.update({name: name for name in ("system", "tools") if name in present})
        return fmt, columns
    if fmt == "alpaca":
        for name in ("instruction", "output"):
            if name not in present:
                raise _missing_column(frame, path, role, fmt, [name], None)
        columns = {"instruction": "instruction", "output": "output"}
        optional = ("input", "system", "history", "tools")
        columns.update({name: name for name in optional if name in present})
        return fmt, columns
    if fmt == "prompt-completion":
        return fmt, {
            "prompt": pick(data.prompt_column, PROMPT_COLUMNS, "prompt_column"),
            "response": pick(data.response_column, RESPONSE_COLUMNS, "response_column"),
        }
    return fmt, {"text": pick(data.text_column, (data.text_column,), "text_column")}


def _missing_column(
    frame: pd.DataFrame, path: str, role: str, fmt: str, wanted: list[str], key: str | None
) -> UserError:
    """The error for a column the format needs: what is there, the closest name, the fix."""
    columns = [str(c) for c in frame.columns]
    close = [m for w in wanted for m in difflib.get_close_matches(w, columns, n=1)]
    hint = f"did you mean {close[0]!r}? " if close else ""
    alternatives = f" (or {', '.join(repr(w) for w in wanted[1:])})" if len(wanted) > 1 else ""
    if key:
        fix = (
            f"Rename the column, set data.{key} to the right one (or --set data.{key}=NAME), "
            "or set data.format to the file's format"
        )
    else:
        fix = f"Rename the column to {wanted[0]!r}, or set data.format to the file's format"
    return UserError(
        f"{role}: column {wanted[0]!r}{alternatives} not found in {path}, and format {fmt!r} "
        f"needs it; {hint}its columns are: {', '.join(columns)}. {fix}"
    )


def _frame_examples(
    frame: pd.DataFrame,
    fmt: str,
    columns: dict[str, str],
    data: DataConfig,
    path: str | Path,
    role: str,
    prompts: bool,
    tags: ChatTags | None = None,
) -> list[LMExample]:
    """Rows as examples (prompts=True: conversations without their final answer); bad rows
    are reported together, empty rows are an error unless data.drop_empty. `tags`: how chat
    messages name their role and text (LLaMA-Factory), None: the usual names."""
    cells = {field: frame[column].tolist() for field, column in columns.items()}
    sources = _source_cells(frame, data, path, role) if not prompts and fmt != "text" else None
    examples: list[LMExample] = []
    bad: list[tuple[int, str]] = []
    empty: list[int] = []
    for row in range(len(frame)):
        values = {field: cells[field][row] for field in cells}
        try:
            example = _row_example(row, fmt, values, columns, prompts, tags)
        except _BadRow as problem:
            bad.append((row, str(problem)))
            continue
        if example is None:
            empty.append(row)
            continue
        if example.messages is not None:
            example.messages = with_system_prompt(example.messages, data)
        if sources is not None:
            example.source = _cell_text(sources[row], data.source_column) or None
        examples.append(example)

    lines = frame.attrs.get("line_numbers")
    if lines is not None and len(lines) != len(frame):
        lines = None

    def where(row: int) -> str:
        return f"row {row} (line {lines[row]})" if lines else f"row {row}"

    if bad:
        shown = "\n".join(f"  {where(row)}: {problem}" for row, problem in bad[:MAX_REPORTED])
        more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise UserError(
            f"{role}: {path}: {len(bad)} row(s) are not valid {fmt} examples (0-based rows):\n"
            f"{shown}{more}\n{_FORMAT_HELP[fmt]}. Fix or remove these rows"
        )
    if empty and not data.drop_empty:
        shown = ", ".join(str(r) for r in empty[:MAX_REPORTED])
        if lines:
            shown += "; lines " + ", ".join(str(lines[r]) for r in empty[:MAX_REPORTED])
        shown += " ..." if len(empty) > MAX_REPORTED else ""
        raise UserError(
            f"{role}: {path}: {len(empty)} row(s) with an empty {_empty_what(fmt, columns)} "
            f"(0-based rows {shown}); fill or remove them, or set data.drop_empty: true to "
            "skip them"
        )
    if not examples:
        raise UserError(f"{role}: {path}: every row is empty")
    return examples


def _source_cells(
    frame: pd.DataFrame, data: DataConfig, path: str | Path, role: str
) -> list | None:
    """data.source_column's cells (the document answering each row), None when unset."""
    column = data.source_column
    if column is None:
        return None
    if column not in frame.columns and not role.startswith("data."):
        return None  # an extra file (eval --data) need not say which document answers
    if column not in frame.columns:
        raise UserError(
            f"{role}: {path} has no column {column!r} (data.source_column); columns: "
            f"{_column_list(frame)}. Add it, or remove data.source_column"
        )
    return frame[column].tolist()


_FORMAT_HELP = {
    "chat": (
        "A chat example is a list of messages, each {'role': ..., 'content': <text>} "
        "(or ShareGPT {'from': ..., 'value': <text>}) with role system, user, assistant or "
        "tool (human, gpt, model, bot, chatgpt, observation are accepted; an assistant "
        "message may hold 'tool_calls', a ShareGPT 'function_call' turn a JSON call); it "
        "needs a user message and ends with the assistant's answer"
    ),
    "alpaca": (
        "An alpaca example has a text 'instruction' and 'output' (optional 'input', "
        "'system', and 'history': a list of [instruction, answer] pairs)"
    ),
    "prompt-completion": "A prompt-completion example has a text prompt and a text response",
    "text": "A text example is one text cell",
}


def _empty_what(fmt: str, columns: dict[str, str]) -> str:
    if fmt == "chat":
        return f"final answer or no user text in {columns['messages']!r}"
    if fmt == "text":
        return repr(columns["text"])
    if fmt == "alpaca":
        return "'instruction' or 'output'"
    return f"{columns['prompt']!r} or {columns['response']!r}"


class _BadRow(Exception):
    """A row that fits no example of its format; the message says what is wrong."""


def _row_example(
    row: int,
    fmt: str,
    values: dict[str, Any],
    columns: dict[str, str],
    prompts: bool,
    tags: ChatTags | None = None,
) -> LMExample | None:
    """The row's example, None when it is empty; raises _BadRow when it is malformed."""

    def text(field: str) -> str:
        return _cell_text(values.get(field), columns.get(field, field))

    if fmt == "text":
        content = text("text")
        if prompts:
            return LMExample(row, messages=[_user(content)]) if content else None
        return LMExample(row, text=content) if content else None
    system = text("system") if "system" in columns else ""
    tools = _tools(values.get("tools"), columns.get("tools", "tools"))
    if fmt == "chat":
        messages = _conversation(values["messages"], prompts, tags)
        if messages is None:
            return None
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        if tools:
            messages[0] = {**messages[0], "tools": tools}
        return LMExample(row, messages=messages)
    history: list[Message] = []
    if fmt == "alpaca":
        user = "\n\n".join(part for part in (text("instruction"), text("input")) if part)
        answer = "" if prompts else text("output")
        history = _history(values.get("history"), columns.get("history", "history"))
    else:
        user, answer = text("prompt"), "" if prompts else text("response")
    if not user or not (prompts or answer):
        return None
    messages = [{"role": "system", "content": system}] if system else []
    messages += [*history, _user(user)]
    if not prompts:
        messages.append({"role": "assistant", "content": answer})
    if tools:
        messages[0] = {**messages[0], "tools": tools}
    return LMExample(row, messages=messages)


def _json_cell(value: Any, column: str) -> Any:
    """A list-valued cell (a JSON string in csv), None when missing or empty."""
    if isinstance(value, np.ndarray):  # parquet lists
        value = value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise _BadRow(f"{column!r} is not valid JSON ({error.msg})") from None
    return value


def _tools(value: Any, column: str) -> list[dict] | None:
    """A row's tool definitions (OpenAI `tools`, or LLaMA-Factory's list of functions) as
    [{"type": "function", "function": {...}}], None when there are none."""
    value = _json_cell(value, column)
    if value is None or value == []:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise _BadRow(f"{column!r} is not a list of tool definitions (JSON objects)")
    tools = []
    for tool in value:
        if "function" not in tool and "name" in tool:
            tool = {"type": "function", "function": tool}
        if not isinstance(tool.get("function"), dict) or "name" not in tool["function"]:
            raise _BadRow(f"{column!r}: a tool has no function name ({tool!r:.60})")
        tools.append(tool)
    return tools


def _history(value: Any, column: str) -> list[Message]:
    """Alpaca `history`: earlier [instruction, answer] pairs, as user and assistant turns."""
    value = _json_cell(value, column)
    if value is None:
        return []
    turns: list[Message] = []
    if not isinstance(value, (list, tuple)):
        raise _BadRow(f"{column!r} is not a list of [instruction, answer] pairs")
    for number, pair in enumerate(value):
        if isinstance(pair, np.ndarray):
            pair = pair.tolist()
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _BadRow(f"{column!r} item {number} is not an [instruction, answer] pair")
        question, answer = (_cell_text(part, column) for part in pair)
        turns += [_user(question), {"role": "assistant", "content": answer}]
    return turns


def _cell_text(value: Any, column: str) -> str:
    """A scalar cell as stripped text ("" when missing); a list or object is a _BadRow."""
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else str(float(value))
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        raise _BadRow(f"{column!r} holds a {type(value).__name__}, not text")
    if pd.isna(value):
        return ""
    return str(value).strip()


def _conversation(value: Any, prompts: bool, tags: ChatTags | None = None) -> list[Message] | None:
    """Validated messages (roles normalised, tool calls in OpenAI's layout); None when the
    row is empty.

    prompts=False: the conversation must end with the assistant's answer (text or a tool
    call). prompts=True: a final assistant message is dropped and what is left must end with
    a user message or a tool result."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise _BadRow(f"the messages are not valid JSON ({error.msg})") from None
    if isinstance(value, np.ndarray):  # parquet lists
        value = value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, (list, tuple)):
        raise _BadRow(f"the messages are not a list (got {type(value).__name__} {value!r:.40})")
    if not value:
        return None
    tags = tags or ChatTags()
    messages = [_message(number, item, tags) for number, item in enumerate(value)]
    if not any(m["role"] == "user" for m in messages):
        raise _BadRow("no user message")
    if prompts:
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if messages[-1]["role"] not in ("user", "tool"):
            raise _BadRow(
                f"the prompt ends with a {messages[-1]['role']} message, not a user message"
            )
    elif messages[-1]["role"] != "assistant":
        raise _BadRow(
            f"it ends with a {messages[-1]['role']} message, not with the assistant's answer"
        )
    elif not messages[-1]["content"].strip() and not messages[-1].get("tool_calls"):
        return None
    if not any(m["content"].strip() for m in messages if m["role"] == "user"):
        return None
    return messages


def _message(number: int, item: Any, tags: ChatTags) -> Message:
    """One message, its role normalised; tool calls and results keep their fields."""
    if not isinstance(item, dict):
        raise _BadRow(f"message {number} is not an object (got {item!r:.40})")

    def get(key: str | None, *defaults: str) -> Any:
        for name in (key,) if key else defaults:
            if item.get(name) is not None:
                return item[name]
        return None

    raw_role = get(tags.role, "role", "from")
    content = get(tags.content, "content", "value")
    if raw_role is None:
        raise _BadRow(f"message {number} has no {tags.role or 'role'!r} (or ShareGPT 'from')")
    name = str(raw_role).strip()
    role = tags.roles.get(name) or ROLE_NAMES.get(name.lower())
    if role is None and name.lower() == FUNCTION_CALL:
        role = FUNCTION_CALL
    if role is None:
        raise _BadRow(
            f"message {number} has the unknown role {raw_role!r} (use system, user, "
            "assistant or tool)"
        )
    if role == FUNCTION_CALL:  # ShareGPT (LLaMA-Factory): the call as JSON text
        calls = _tool_calls(number, _function_call_json(number, content))
        return {"role": "assistant", "content": "", "tool_calls": calls}
    calls = item.get("tool_calls") if role == "assistant" else None
    if calls is not None and len(calls):  # `tool_calls: []` is a plain answer
        if content is not None and not isinstance(content, str):
            raise _BadRow(f"message {number} (assistant) has a {type(content).__name__} content")
        return {
            "role": "assistant",
            "content": content or "",
            "tool_calls": _tool_calls(number, calls),
        }
    if not isinstance(content, str):
        kind = "no content" if content is None else f"a {type(content).__name__} content"
        raise _BadRow(f"message {number} ({role}) has {kind}, not a text")
    message: Message = {"role": role, "content": content}
    if role == "tool":
        message.update({k: str(item[k]) for k in ("tool_call_id", "name") if item.get(k)})
    return message


def _function_call_json(number: int, content: Any) -> Any:
    if isinstance(content, str):
        try:
            return json.loads(content)
        except json.JSONDecodeError as error:
            raise _BadRow(
                f"message {number} (function_call) is not a JSON call ({error.msg}); write "
                '{"name": ..., "arguments": {...}}'
            ) from None
    return content


def _tool_calls(number: int, calls: Any) -> list[dict]:
    """Tool calls as [{"type": "function", "id"?, "function": {"name", "arguments": dict}}]:
    OpenAI's layout (arguments a JSON string) or a bare {"name", "arguments"} (ShareGPT)."""
    if isinstance(calls, np.ndarray):
        calls = calls.tolist()
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, (list, tuple)) or not calls:
        raise _BadRow(f"message {number}: 'tool_calls' is not a list of calls")
    normalised = []
    for call in calls:
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _BadRow(f"message {number}: a tool call has no function name ({call!r:.60})")
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as error:
                raise _BadRow(
                    f"message {number}: the arguments of {function['name']!r} are not JSON "
                    f"({error.msg})"
                ) from None
        if not isinstance(arguments, dict):
            raise _BadRow(
                f"message {number}: the arguments of {function['name']!r} are not an object"
            )
        entry: dict = {
            "type": "function",
            "function": {"name": function["name"], "arguments": arguments},
        }
        if isinstance(call, dict) and call.get("id"):
            entry["id"] = str(call["id"])
        normalised.append(entry)
    return normalised


def _file_prompts(path: Path, data: DataConfig) -> list[list[Message]]:
    """Prompt conversations of a table, its format detected from its columns."""
    frame = read_table(path, role="predict")
    present = set(map(str, frame.columns))

    def first(configured: str | None, defaults: tuple[str, ...]) -> str | None:
        if configured and configured in present:
            return configured
        return next((name for name in defaults if name in present), None)

    columns: dict[str, str]
    if messages := first(data.messages_column, MESSAGES_COLUMNS):
        fmt, columns = "chat", {"messages": messages}
        columns.update({name: name for name in ("system", "tools") if name in present})
    elif "instruction" in present:
        fmt, columns = "alpaca", {n: n for n in ("instruction", "input", "system") if n in present}
    elif prompt := first(data.prompt_column, PROMPT_COLUMNS):
        fmt, columns = "prompt-completion", {"prompt": prompt}
    elif data.text_column in present:
        fmt, columns = "text", {"text": data.text_column}
    else:
        raise UserError(
            f"predict: {path}: no prompt column among its columns ({_column_list(frame)}); "
            "give a 'messages' or 'conversations' column (chat), 'instruction' (alpaca), a "
            f"'prompt', 'question' or 'query' column, or a {data.text_column!r} column, or set "
            "data.prompt_column"
        )
    examples = _frame_examples(frame, fmt, columns, data, path, "predict", prompts=True)
    return [example.messages or [] for example in examples]


def with_system_prompt(messages: list[Message], data: DataConfig) -> list[Message]:
    """data.system_prompt first, unless the conversation has its own system message."""
    system = (data.system_prompt or "").strip()
    if not system or any(m["role"] == "system" for m in messages):
        return messages
    return [{"role": "system", "content": system}, *messages]


def _user(content: str) -> Message:
    return {"role": "user", "content": content}


def _column_list(frame: pd.DataFrame) -> str:
    return ", ".join(str(c) for c in frame.columns) or "none"


def _min_share(total: int) -> str:
    """The smallest share that rounds to one example of `total` (at most 0.5)."""
    if total == 0:
        return "0.5"
    return f"{min(0.5, math.ceil(50 / total) / 100):.2f}"


# ---------------------------------------------------------------------------- HTML

_SKIPPED_TAGS = {"script", "style", "noscript", "template", "svg", "title"}
_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section",
    "summary", "table", "td", "th", "tr", "ul",
}  # fmt: skip


class _HTMLText(HTMLParser):
    """Collects the visible text of a page, one paragraph per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._lines: list[list[str]] = [[]]
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip += 1
        elif tag == "br":
            self._lines.append([])
        elif tag in _BLOCK_TAGS:
            self.flush()
            self._pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIPPED_TAGS:  # <br/>, <hr/>; a self-closed <script/> holds nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.flush()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._lines[-1].append(first)
            self._lines.extend([line] for line in rest)
        else:
            self._lines[-1].append(data)

    def flush(self) -> None:
        """End the current paragraph."""
        if self._pre:
            lines = ["".join(parts).rstrip() for parts in self._lines]
        else:
            lines = [re.sub(r"\s+", " ", "".join(parts)).strip() for parts in self._lines]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            self.paragraphs.append("\n".join(lines))
        self._lines = [[]]
