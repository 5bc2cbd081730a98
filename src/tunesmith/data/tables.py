"""Read a data file (csv, tsv, jsonl, json, parquet) into a DataFrame, with readable errors."""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path

import pandas as pd

from tunesmith.errors import UserError

READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TEXT_KINDS = ("csv", "tsv", "jsonl", "json")
"""Formats that are text files, so their encoding is checked before parsing."""
UNTYPED_KINDS = ("csv", "tsv")
"""Formats whose cells are all read as strings (a number in them is only digits)."""

_CHUNK = 1 << 20
_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_CONTAINERS = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook (or another Office file)"),
)


def read_table(path: str | Path, role: str = "data") -> pd.DataFrame:
    """Read `path`; `role` (e.g. "data.train") names it in error messages.

    Rows keep the order of the file, so a row number in a message is the 0-based data
    row as read (the header line not counted). For jsonl, `frame.attrs["line_numbers"]`
    holds each row's 1-based line in the file (blank lines are skipped, so they differ).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{role}: file not found: {path}; check the path in the recipe")
    if path.is_dir():
        raise UserError(f"{role}: {path} is a folder; give a csv, tsv, jsonl, json or parquet file")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(READERS))
        raise UserError(f"{role}: {path}: unsupported file type {path.suffix!r}; use {supported}")
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{role}: {path} is empty; it needs a header and at least one row")
        if kind in TEXT_KINDS:
            check_utf8(path, role, kind)
        frame = _READ[kind](path, role)
    except UserError:
        raise
    except PermissionError:
        raise UserError(f"{role}: {path}: permission denied; make the file readable") from None
    except Exception as error:  # each reader raises its own family of parse errors
        raise UserError(
            f"{role}: {path} is not a valid {kind} file: {_first_line(error)}"
        ) from None
    if len(frame) == 0:
        what = "only a header" if kind in UNTYPED_KINDS else "no records"
        raise UserError(f"{role}: {path} has no data rows ({what}); add at least one row")
    return frame.reset_index(drop=True)


def is_untyped(path: str | Path) -> bool:
    """True for csv/tsv, whose cells are strings: "3" there may be meant as a number."""
    return READERS.get(Path(path).suffix.lower()) in UNTYPED_KINDS


# --- encoding ----------------------------------------------------------------------------


def check_utf8(path: Path, role: str, kind: str = "text") -> None:
    """Refuse a text file that is not UTF-8, naming the line of the first bad byte.

    Parsers report a byte offset inside their read buffer; a user needs the line, a guess at
    the encoding and how to save the file as UTF-8. A UTF-8 byte-order mark is fine. The
    file is streamed in chunks, so memory stays bounded whatever its size."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    with path.open("rb") as handle:
        first = True
        while chunk := handle.read(_CHUNK):
            if first:
                _refuse_other_encodings(chunk, path, role, kind)
                first = False
            data = decoder.getstate()[0] + chunk  # bytes held back from the last chunk
            nul = data.find(b"\x00")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                if not 0 <= nul < error.start:
                    line = newlines + data.count(b"\n", 0, error.start) + 1
                    raise _not_utf8(path, role, kind, line, data, error.start) from None
            if nul >= 0:
                line = newlines + data.count(b"\n", 0, nul) + 1
                raise _nul_bytes(path, role, kind, line)
            newlines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UserError(
                f"{role}: {path}: line {newlines + 1} ends in the middle of a UTF-8 character "
                "(the file is cut short, or not UTF-8). " + _save_as_utf8(kind)
            ) from None


def _refuse_other_encodings(head: bytes, path: Path, role: str, kind: str) -> None:
    """A byte-order mark of UTF-16/32, or an Office file renamed: certain from the first bytes."""
    for mark, name in _BOMS:
        if head.startswith(mark):
            raise UserError(
                f"{role}: {path} is {name} text (line 1 starts with a {name} byte-order mark), "
                f"not UTF-8. {_save_as_utf8(kind, name)}"
            )
    for magic, what in _CONTAINERS:
        if head.startswith(magic):
            raise UserError(
                f"{role}: {path} is {what}, not a {kind} text file. Export it from the program "
                "that made it: in Excel, Save As > CSV UTF-8 (Comma delimited)"
            )


def _nul_bytes(path: Path, role: str, kind: str, line: int) -> UserError:
    """NUL is valid UTF-8, but no text file holds it: UTF-16 without a byte-order mark does
    (ASCII letters become letter + NUL), and would otherwise be read as garbled columns."""
    return UserError(
        f"{role}: {path}: line {line} holds NUL bytes, so it is not UTF-8 text: it looks like "
        f"UTF-16 saved without a byte-order mark, or a binary file. {_save_as_utf8(kind)}"
    )


def _not_utf8(path: Path, role: str, kind: str, line: int, data: bytes, offset: int) -> UserError:
    """The error for a byte UTF-8 does not allow: its line, the byte and the text around it."""
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    text = data[start : end if end >= 0 else len(data)][:80]
    near = text.decode("utf-8", errors="backslashreplace").strip()
    return UserError(
        f"{role}: {path} is not UTF-8 text: line {line} has the byte 0x{data[offset]:02x}, "
        f'which UTF-8 does not allow (near "{near}"); the file is in another encoding '
        f"(e.g. Windows-1252, Latin-1 or Shift-JIS). {_save_as_utf8(kind)}"
    )


def _save_as_utf8(kind: str, encoding: str = "WINDOWS-1252") -> str:
    """The fix: how to save the file as UTF-8 with the tool that likely made it."""
    if kind == "csv":
        return (
            "Save it as UTF-8: in Excel, Save As > CSV UTF-8 (Comma delimited); in a text "
            "editor, save with the encoding UTF-8"
        )
    return (
        "Save it as UTF-8: in a text editor, save with the encoding UTF-8, or convert it "
        f"(e.g. iconv -f {encoding} -t UTF-8 in.{kind} > out.{kind})"
    )


# --- the readers -------------------------------------------------------------------------


def _read_jsonl(path: Path, role: str) -> pd.DataFrame:
    records = []
    line_numbers = []
    # newline="\n": lines end at \n only, as the encoding check counts them
    with path.open(encoding="utf-8-sig", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            records.append(_jsonl_record(line, number, path, role))
            line_numbers.append(number)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["line_numbers"] = line_numbers
    return frame


def _jsonl_record(line: str, number: int, path: Path, role: str) -> dict:
    """One line as a record; a bad line is named, with a hint when the file is one JSON list."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        hint = (
            "; the file looks like one JSON list: name it .json instead"
            if number == 1 and line.lstrip().startswith("[")
            else ""
        )
        raise UserError(
            f"{role}: {path}: line {number} is not valid JSON ({error.msg} at column "
            f"{error.colno}); each line of a .jsonl file must be one JSON object{hint}"
        ) from None
    if not isinstance(record, dict):
        raise UserError(
            f"{role}: {path}: line {number} is not a JSON object (got {record!r:.60}); each "
            'line must be one object such as {"text": ..., "label": ...}'
        )
    return record


def _read_json(path: Path, role: str) -> pd.DataFrame:
    try:
        payload = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        hint = (
            "; it looks like one object per line: name it .jsonl instead"
            if error.msg == "Extra data"
            else ""
        )
        raise UserError(
            f"{role}: {path} is not valid JSON: {error.msg} at line {error.lineno}, column "
            f"{error.colno}; a .json file holds one list of objects [{{...}}, ...]{hint}"
        ) from None
    if isinstance(payload, dict):
        # {"data": [...]} or {"rows": [...]}: the one list of records inside
        lists = [value for value in payload.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise UserError(
                f"{role}: {path}: expected a JSON list of objects, one per example (or one list "
                f"inside an object); this object holds {len(lists)} lists"
            )
        payload = lists[0]
    if not isinstance(payload, list):
        raise UserError(
            f"{role}: {path}: expected a JSON list of objects, one per example; got {payload!r:.60}"
        )
    for index, row in enumerate(payload):
        if not isinstance(row, dict):
            raise UserError(
                f"{role}: {path}: item {index} (0-based) of the list is not an object (got "
                f'{row!r:.60}); each example must be an object such as {{"text": ..., '
                '"label": ...}'
            )
    return pd.DataFrame.from_records(payload)


def _read_csv(path: Path, role: str, sep: str = ",") -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8"
        )
    except pd.errors.EmptyDataError:
        raise UserError(
            f"{role}: {path} holds only blank lines; it needs a header line and at least one row"
        ) from None
    except pd.errors.ParserError as error:
        raise UserError(_csv_problem(path, role, sep) or _parse_error(path, role, error)) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # rows with more cells than the header names: pandas silently made the first
        # column(s) the index, shifting every cell one column to the left
        raise UserError(_csv_problem(path, role, sep) or f"{role}: {path}: rows and header differ")
    return frame


def _csv_problem(path: Path, role: str, sep: str) -> str | None:
    """The first row with more cells than the header, or a quote never closed, by file line
    (pandas counts rows, which differ from lines once a quoted cell spans lines)."""
    what = "a tab" if sep == "\t" else repr(sep)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header: list[str] | None = None
        header_line = start = 1
        try:
            for row in reader:
                if row and header is None:
                    header, header_line = row, start
                elif row and header is not None and len(row) > len(header):
                    return (
                        f"{role}: {path}: line {start} has {len(row)} cells but the header "
                        f"(line {header_line}) names {len(header)} columns; put quotes around "
                        f"a cell that holds the separator {what}, or remove the extra cells"
                    )
                start = reader.line_num + 1
        except csv.Error:  # e.g. a cell over the csv module's size limit: pandas says more
            return None
    return _unclosed_quote(path, role, sep)


def _unclosed_quote(path: Path, role: str, sep: str) -> str | None:
    """A quote that opens a cell and is never closed swallows the rest of the file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep, strict=True)
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as error:
            if "unexpected end of data" not in str(error):
                return None
            return (
                f'{role}: {path}: line {start} opens a quoted cell (") that is never closed, '
                "so it runs to the end of the file; close the quote, or write a quote inside "
                'a quoted cell as two ("")'
            )
    return None


def _parse_error(path: Path, role: str, error: Exception) -> str:
    message = _first_line(error).removeprefix("Error tokenizing data. C error: ")
    return f"{role}: {path} is not a valid csv/tsv file: {message}"


def _read_parquet(path: Path, role: str) -> pd.DataFrame:
    return pd.read_parquet(path)


_READ = {
    "csv": _read_csv,
    "tsv": lambda path, role: _read_csv(path, role, sep="\t"),
    "jsonl": _read_jsonl,
    "json": _read_json,
    "parquet": _read_parquet,
}


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
