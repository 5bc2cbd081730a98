import json
from pathlib import Path

import pandas as pd
import pytest

from tunesmith.data.causal import (
    LMExample,
    html_to_text,
    load_causal_lm,
    load_lm_file,
    read_prompts,
)
from tunesmith.errors import UserError
from tunesmith.recipe import DataConfig


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def config(path: Path, **extra) -> DataConfig:
    return DataConfig(train=str(path), **extra)


def everything(splits) -> list[LMExample]:
    """All examples of the three splits, in row order."""
    examples = [*splits.train.examples, *splits.validation.examples, *splits.test.examples]
    return sorted(examples, key=lambda e: e.row)


def alpaca_rows(n: int) -> list[dict]:
    return [{"instruction": f"Say {i}", "input": "", "output": f"{i}"} for i in range(n)]


def chat(user: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


# ---------------------------------------------------------------- formats


def test_alpaca_with_and_without_input(tmp_path):
    rows = alpaca_rows(20)
    rows[0] = {"instruction": "Translate", "input": "Hallo", "output": "Hello"}
    rows[1] = {"instruction": "Greet", "output": "Hi", "system": "Be brief."}
    splits = load_causal_lm(config(jsonl(tmp_path / "d.jsonl", rows)), seed=0)
    assert splits.format == "alpaca"
    examples = everything(splits)
    assert len(examples) == 20
    assert examples[0].messages == [
        {"role": "user", "content": "Translate\n\nHallo"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert examples[1].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Greet"},
        {"role": "assistant", "content": "Hi"},
    ]
    assert examples[5].messages[0] == {"role": "user", "content": "Say 5"}
    assert examples[5].text is None


def test_messages_column_keeps_every_turn(tmp_path):
    multi = [
        {"role": "system", "content": "You are terse."},
        *chat("Hi", "Hello."),
        *chat("Weather?", "Sunny."),
    ]
    rows = [{"messages": multi}] + [{"messages": chat(f"q{i}", f"a{i}")} for i in range(9)]
    splits = load_causal_lm(config(jsonl(tmp_path / "chat.jsonl", rows)), seed=0)
    assert splits.format == "chat"
    assert everything(splits)[0].messages == multi


def test_sharegpt_conversations(tmp_path):
    conversation = [
        {"from": "system", "value": "Be kind."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
    ]
    rows = [{"conversations": conversation, "id": i} for i in range(10)]
    splits = load_causal_lm(config(jsonl(tmp_path / "sg.jsonl", rows)), seed=0)
    assert splits.format == "chat"
    assert everything(splits)[3].messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]


def test_chat_as_json_strings_in_a_csv(tmp_path):
    frame = pd.DataFrame({"messages": [json.dumps(chat(f"q{i}", f"a{i}")) for i in range(10)]})
    frame.to_csv(tmp_path / "chat.csv", index=False)
    splits = load_causal_lm(config(tmp_path / "chat.csv"), seed=0)
    assert splits.format == "chat"
    assert everything(splits)[7].messages == chat("q7", "a7")


def test_chat_in_parquet(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "q0"}, {"from": "gpt", "value": "a"}]}]
    pd.DataFrame(rows * 10).to_parquet(tmp_path / "c.parquet")
    splits = load_causal_lm(config(tmp_path / "c.parquet"), seed=0)
    assert splits.format == "chat" and everything(splits)[0].messages == chat("q0", "a")


def test_messages_column_option(tmp_path):
    rows = [{"dialog": chat(f"q{i}", f"a{i}")} for i in range(10)]
    path = jsonl(tmp_path / "d.jsonl", rows)
    splits = load_causal_lm(config(path, messages_column="dialog"), seed=0)
    assert splits.format == "chat" and everything(splits)[2].messages == chat("q2", "a2")


@pytest.mark.parametrize(("prompt", "response"), [("prompt", "completion"), ("question", "answer")])
def test_prompt_completion_columns(tmp_path, prompt, response):
    frame = pd.DataFrame({prompt: [f"p{i}" for i in range(10)], response: range(10)})
    frame.to_csv(tmp_path / "pc.csv", index=False)
    splits = load_causal_lm(config(tmp_path / "pc.csv"), seed=0)
    assert splits.format == "prompt-completion"
    assert everything(splits)[4].messages == chat("p4", "4")


def test_prompt_completion_with_configured_columns(tmp_path):
    rows = [{"ask": f"p{i}", "reply": f"r{i}", "text": "ignored"} for i in range(10)]
    path = jsonl(tmp_path / "d.jsonl", rows)
    splits = load_causal_lm(config(path, prompt_column="ask", response_column="reply"), seed=0)
    assert splits.format == "prompt-completion"
    assert everything(splits)[1].messages == chat("p1", "r1")


def test_text_rows(tmp_path):
    frame = pd.DataFrame({"body": [f"document number {i}" for i in range(10)]})
    frame.to_parquet(tmp_path / "t.parquet")
    splits = load_causal_lm(config(tmp_path / "t.parquet", text_column="body"), seed=0)
    assert splits.format == "text"
    examples = everything(splits)
    assert [e.text for e in examples] == list(frame["body"])
    assert all(e.messages is None for e in examples)


def test_folder_of_documents(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("plain text\n")
    (docs / "b.md").write_text("# Title\n\nmarkdown body")
    (docs / "c.txt").write_text("   \n")  # empty: skipped
    (docs / "notes.csv").write_text("ignored,file\n")
    (docs / "sub" / "d.html").write_text(
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>Heading &amp; more</h1><p>First   paragraph\nwraps.</p>"
        "<script>alert('x')</script><p>Second.</p></body></html>"
    )
    (docs / "sub" / "e.htm").write_text("<p>one</p><p>two</p>")
    splits = load_causal_lm(DataConfig(train=str(docs), validation_size=0.2, test_size=0.2), 0)
    assert splits.format == "text"
    examples = everything(splits)
    assert [e.row for e in examples] == [0, 1, 3, 4]  # c.txt (row 2) is empty
    assert examples[0].text == "plain text"
    assert examples[1].text == "# Title\n\nmarkdown body"
    assert examples[2].text == "Heading & more\n\nFirst paragraph wraps.\n\nSecond."
    assert examples[3].text == "one\n\ntwo"
    assert splits.train.source == str(docs)


def test_folder_of_documents_named_through_dot_dot(tmp_path, monkeypatch):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    for i in range(10):
        (tmp_path / "docs" / "sub" / f"{i}.txt").write_text(f"document {i}")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    splits = load_causal_lm(DataConfig(train="../work/../docs"), seed=0)
    assert sorted(e.text for e in everything(splits)) == [f"document {i}" for i in range(10)]


def test_html_to_text_keeps_line_breaks_and_preformatted_text():
    html = "<div>a<br>b</div><pre>  x = 1\n    y</pre><noscript>no</noscript>c"
    assert html_to_text(html) == "a\nb\n\n  x = 1\n    y\n\nc"


def test_folder_without_documents_names_the_suffixes(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "data.csv").write_text("a\n1\n")
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(tmp_path / "docs"), seed=0)
    message = str(caught.value)
    assert "data.train" in message and str(tmp_path / "docs") in message
    assert ".txt, .md, .markdown, .html, .htm" in message


def test_folder_with_an_instruction_format_is_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("text")
    with pytest.raises(UserError, match=r"is a folder of documents.*'alpaca'.*data.format: text"):
        load_causal_lm(config(tmp_path / "docs", format="alpaca"), seed=0)


# ---------------------------------------------------------------- column errors


def test_explicit_format_with_a_missing_column(tmp_path):
    rows = [{"instruction": "x", "outputs": "y"} for _ in range(10)]
    path = jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(path, format="alpaca"), seed=0)
    message = str(caught.value)
    assert "column 'output' not found" in message and "did you mean 'outputs'?" in message
    assert "data.train" in message and "format 'alpaca'" in message


def test_configured_column_missing_names_the_key(tmp_path):
    rows = [{"prompt": "x", "completion": "y"} for _ in range(10)]
    path = jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(UserError, match=r"column 'promt' not found.*did you mean 'prompt'"):
        load_causal_lm(config(path, prompt_column="promt"), seed=0)


def test_unknown_columns_list_what_each_format_needs(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"foo": "x", "bar": "y"}] * 5)
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(path), seed=0)
    message = str(caught.value)
    assert "cannot tell the data format" in message and "(foo, bar)" in message
    assert "'instruction' and 'output'" in message and "'messages'" in message
    assert "set data.format" in message


# ---------------------------------------------------------------- bad and empty rows


def test_bad_rows_are_reported_with_row_and_line(tmp_path):
    good = {"messages": chat("q", "a")}
    rows = [
        good,
        {"messages": {"role": "user", "content": "q"}},
        good,
        {"messages": [{"role": "narrator", "content": "x"}, *chat("q", "a")]},
        {"messages": [{"role": "user", "content": "q"}]},
        {
            "messages": [
                {"role": "user", "content": ["parts"]},
                {"role": "assistant", "content": "a"},
            ]
        },
        good,
    ]
    path = tmp_path / "chat.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "")  # a blank line: rows after it are one line further down
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(path), seed=0)
    message = str(caught.value)
    assert message.startswith(f"data.train: {path}: 4 row(s) are not valid chat examples")
    assert "row 1 (line 2): the messages are not a list (got dict" in message
    assert "row 3 (line 5): message 0 has the unknown role 'narrator'" in message
    assert "row 4 (line 6): it ends with a user message" in message
    assert "row 5 (line 7): message 0 (user) has a list content" in message


def test_at_most_ten_bad_rows_are_listed(tmp_path):
    rows = [{"messages": 5}] * 12 + [{"messages": chat("q", "a")}]
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(jsonl(tmp_path / "d.jsonl", rows)), seed=0)
    message = str(caught.value)
    assert "12 row(s)" in message and "row 9 (line 10)" in message
    assert "row 10 " not in message and "and 2 more" in message


def test_bad_rows_in_a_csv_have_no_line_numbers(tmp_path):
    frame = pd.DataFrame({"messages": [json.dumps(chat("q", "a")), "{broken", "[]"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(UserError, match=r"row 1: the messages are not valid JSON"):
        load_causal_lm(config(tmp_path / "d.csv"), seed=0)


def test_empty_rows_are_named_or_dropped(tmp_path):
    rows = alpaca_rows(20)
    rows[3]["output"] = "  "
    rows[7]["instruction"] = ""
    path = jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(path), seed=0)
    message = str(caught.value)
    assert "2 row(s) with an empty 'instruction' or 'output'" in message
    assert "rows 3, 7; lines 4, 8" in message and "data.drop_empty: true" in message
    splits = load_causal_lm(config(path, drop_empty=True), seed=0)
    assert [e.row for e in everything(splits)] == [r for r in range(20) if r not in (3, 7)]


def test_empty_chat_answer_is_an_empty_row(tmp_path):
    rows = [{"messages": chat(f"q{i}", "" if i == 2 else "a")} for i in range(10)]
    path = jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(
        UserError,
        match=r"1 row\(s\) with an empty final answer or no user text in 'messages'.*rows 2",
    ):
        load_causal_lm(config(path), seed=0)
    assert len(everything(load_causal_lm(config(path, drop_empty=True), seed=0))) == 9


def test_system_prompt_goes_first_unless_there_is_one(tmp_path):
    rows = [{"messages": chat(f"q{i}", "a")} for i in range(9)]
    rows.append({"messages": [{"role": "system", "content": "own"}, *chat("q9", "a")]})
    path = jsonl(tmp_path / "d.jsonl", rows)
    examples = everything(load_causal_lm(config(path, system_prompt="Be helpful."), seed=0))
    assert examples[0].messages == [{"role": "system", "content": "Be helpful."}, *chat("q0", "a")]
    assert examples[9].messages[0] == {"role": "system", "content": "own"}
    assert sum(m["role"] == "system" for m in examples[9].messages) == 1


def test_system_prompt_does_not_touch_raw_text(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}"} for i in range(10)])
    examples = everything(load_causal_lm(config(path, system_prompt="sys"), seed=0))
    assert all(e.messages is None and e.text.startswith("t") for e in examples)


# ---------------------------------------------------------------- splits


def test_split_sizes_and_determinism(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", alpaca_rows(100))
    first = load_causal_lm(config(path), seed=1)
    assert (len(first.train), len(first.validation), len(first.test)) == (70, 10, 20)
    rows = {name: [e.row for e in first.split(name).examples] for name in ("train", "test")}
    rows["validation"] = [e.row for e in first.validation.examples]
    assert sorted(row for split in rows.values() for row in split) == list(range(100))
    again = load_causal_lm(config(path), seed=1)
    assert [e.row for e in again.test.examples] == rows["test"]
    other = load_causal_lm(config(path), seed=2)
    assert [e.row for e in other.test.examples] != rows["test"]
    assert first.test.source == str(path)


def test_given_validation_and_test_files_are_used(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", alpaca_rows(10))
    val = jsonl(tmp_path / "val.jsonl", alpaca_rows(3))
    test = jsonl(tmp_path / "test.jsonl", alpaca_rows(4))
    splits = load_causal_lm(config(train, validation=str(val), test=str(test)), seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (10, 3, 4)
    assert splits.validation.source == str(val)
    assert [e.row for e in splits.test.examples] == [0, 1, 2, 3]


def test_validation_file_must_have_the_train_format(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", alpaca_rows(10))
    val = jsonl(tmp_path / "val.jsonl", [{"messages": chat("q", "a")}])
    with pytest.raises(UserError, match=r"data.validation: column 'instruction' not found"):
        load_causal_lm(config(train, validation=str(val)), seed=0)


def test_only_the_missing_split_is_taken_from_train(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", alpaca_rows(50))
    test = jsonl(tmp_path / "test.jsonl", alpaca_rows(5))
    splits = load_causal_lm(config(train, test=str(test)), seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (45, 5, 5)


def test_a_split_that_would_be_empty(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", alpaca_rows(4))
    with pytest.raises(UserError) as caught:
        load_causal_lm(config(path), seed=0)
    message = str(caught.value)
    assert "validation split is empty" in message and "has 4 usable example(s)" in message
    assert "Give data.validation a file" in message and "data.validation_size" in message
    # the size the message suggests is enough
    splits = load_causal_lm(config(path, validation_size=0.13), seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (2, 1, 1)


def test_train_split_left_empty(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", alpaca_rows(2))
    with pytest.raises(UserError, match=r"train split is empty.*2 usable example"):
        load_causal_lm(config(path, validation_size=0.3, test_size=0.5), seed=0)


# ---------------------------------------------------------------- extra files and prompts


def test_load_lm_file_detects_or_uses_the_given_format(tmp_path):
    path = jsonl(tmp_path / "extra.jsonl", [{"question": "q", "answer": "a", "text": "t"}] * 3)
    split = load_lm_file(str(path), DataConfig(train="unused.jsonl"))
    assert len(split) == 3 and split.examples[0].messages == chat("q", "a")
    as_text = load_lm_file(str(path), DataConfig(train="unused.jsonl"), format="text")
    assert as_text.examples[2] == LMExample(row=2, text="t")
    with pytest.raises(UserError, match=r"--data: column 'instruction' not found"):
        load_lm_file(str(path), DataConfig(train="unused.jsonl"), format="alpaca")


def test_read_prompts_from_text_and_txt_file(tmp_path):
    (tmp_path / "p.txt").write_text("first prompt\n\n  second prompt  \n")
    prompts = read_prompts(["What is 2+2?", str(tmp_path / "p.txt")], DataConfig(train="x"))
    assert prompts == [
        [{"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "first prompt"}],
        [{"role": "user", "content": "second prompt"}],
    ]


def test_read_prompts_drops_the_answer_and_adds_the_system_prompt(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", alpaca_rows(2))
    prompts = read_prompts([str(path)], DataConfig(train="x", system_prompt="Sys"))
    assert prompts == [
        [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Say 0"}],
        [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Say 1"}],
    ]


def test_read_prompts_from_a_multi_turn_chat(tmp_path):
    turns = [*chat("Hi", "Hello."), *chat("Weather?", "Sunny.")]
    path = jsonl(tmp_path / "c.jsonl", [{"messages": turns}])
    assert read_prompts([str(path)], DataConfig(train="x")) == [turns[:-1]]


def test_read_prompts_with_nothing_to_predict(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(UserError, match="nothing to predict"):
        read_prompts([str(tmp_path / "empty.txt"), "  "], DataConfig(train="x"))


def test_read_prompts_names_a_table_without_a_prompt_column(tmp_path):
    path = jsonl(tmp_path / "q.jsonl", [{"foo": "x"}])
    with pytest.raises(UserError, match=r"no prompt column.*\(foo\)"):
        read_prompts([str(path)], DataConfig(train="x"))


# ---------------------------------------------------------------- other tools' layouts

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def openai_tool_row(i: int) -> dict:
    """A row of OpenAI's chat fine-tuning layout with a tool call and its result."""
    return {
        "messages": [
            {"role": "system", "content": "You can look up the weather."},
            {"role": "user", "content": f"Weather in Paris, day {i}?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
            {"role": "assistant", "content": "It is sunny in Paris."},
        ],
        "tools": [WEATHER_TOOL],
    }


def test_openai_tool_calls_and_results_are_kept(tmp_path):
    path = jsonl(tmp_path / "oa.jsonl", [openai_tool_row(i) for i in range(10)])
    splits = load_causal_lm(config(path), seed=0)
    assert splits.format == "chat"
    messages = everything(splits)[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[0]["tools"] == [WEATHER_TOOL]
    assert messages[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                "id": "call_1",
            }
        ],
    }
    assert messages[3] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_1"}
    assert messages[4] == {"role": "assistant", "content": "It is sunny in Paris."}


def test_a_conversation_ending_with_a_tool_result_is_still_an_error(tmp_path):
    rows = [openai_tool_row(i) for i in range(10)]
    rows[4]["messages"] = rows[4]["messages"][:-1]
    rows[6]["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{city: Paris"
    with pytest.raises(UserError) as raised:
        load_causal_lm(config(jsonl(tmp_path / "oa.jsonl", rows)), seed=0)
    assert "row 4 (line 5): it ends with a tool message, not with the assistant's answer" in str(
        raised.value
    )
    assert "row 6 (line 7): message 2: the arguments of 'get_weather' are not JSON" in str(
        raised.value
    )


def test_sharegpt_top_level_system_and_function_turns(tmp_path):
    """LLaMA-Factory's ShareGPT layout: `system` and `tools` beside `conversations`, and
    function_call / observation turns."""
    call = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})
    rows = [
        {
            "conversations": [
                {"from": "human", "value": f"Weather in Oslo, day {i}?"},
                {"from": "function_call", "value": call},
                {"from": "observation", "value": "snow, -3 C"},
                {"from": "gpt", "value": "It snows in Oslo."},
            ],
            "system": "You are a weather bot.",
            "tools": json.dumps([WEATHER_TOOL["function"]]),
        }
        for i in range(10)
    ]  # fmt: skip
    rows[1].pop("tools")
    examples = everything(load_causal_lm(config(jsonl(tmp_path / "sg.jsonl", rows)), seed=0))
    first = examples[0].messages
    assert first[0] == {
        "role": "system",
        "content": "You are a weather bot.",
        "tools": [WEATHER_TOOL],
    }
    assert first[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
        ],
    }
    assert first[3] == {"role": "tool", "content": "snow, -3 C"}
    assert examples[1].messages[0] == {"role": "system", "content": "You are a weather bot."}


def test_sharegpt_system_column_yields_to_a_system_turn(tmp_path):
    rows = [
        {
            "conversations": [{"from": "system", "value": "own"}, *chat(f"q{i}", "a")],
            "system": "top",
        }
        for i in range(10)
    ]
    examples = everything(load_causal_lm(config(jsonl(tmp_path / "sg.jsonl", rows)), seed=0))
    assert [m["content"] for m in examples[0].messages if m["role"] == "system"] == ["own"]


def llama_factory_folder(tmp_path: Path) -> Path:
    """A LLaMA-Factory data folder: an alpaca and a sharegpt entry with renamed columns/tags."""
    folder = tmp_path / "lf"
    folder.mkdir()
    alpaca = [
        {"ask": f"Add {i} and 1", "ctx": "in decimal", "reply": f"{i + 1}", "sys": "Be exact.",
         "hist": [["Hello", "Hi!"]]}
        for i in range(10)
    ]  # fmt: skip
    jsonl(folder / "maths.jsonl", alpaca)
    dialogs = [
        {"dialog": [{"speaker": "customer", "text": f"Where is order {i}?"},
                    {"speaker": "agent", "text": "It ships today."}],
         "persona": "You are a shop assistant."}
        for i in range(10)
    ]  # fmt: skip
    (folder / "support.json").write_text(json.dumps(dialogs))
    info = {
        "maths": {
            "file_name": "maths.jsonl",
            "columns": {"prompt": "ask", "query": "ctx", "response": "reply", "system": "sys",
                        "history": "hist"},
        },
        "support": {
            "file_name": "support.json",
            "formatting": "sharegpt",
            "columns": {"messages": "dialog", "system": "persona"},
            "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "customer",
                     "assistant_tag": "agent"},
        },
        "remote": {"hf_hub_url": "someone/data"},
    }  # fmt: skip
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return folder


def test_llama_factory_dataset_info_gives_the_columns(tmp_path):
    folder = llama_factory_folder(tmp_path)
    maths = load_causal_lm(config(folder, dataset="maths"), seed=0)
    assert maths.format == "alpaca" and maths.train.source == str(folder / "maths.jsonl")
    assert everything(maths)[3].messages == [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Add 3 and 1\n\nin decimal"},
        {"role": "assistant", "content": "4"},
    ]
    support = load_causal_lm(config(folder, dataset="support"), seed=0)
    assert support.format == "chat"
    assert everything(support)[2].messages == [
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "Where is order 2?"},
        {"role": "assistant", "content": "It ships today."},
    ]
    # a file beside dataset_info.json: its entry is the one whose file_name it is
    beside = load_causal_lm(config(folder / "support.json"), seed=0)
    assert everything(beside)[2].messages == everything(support)[2].messages
    validation = folder / "maths.jsonl"
    both = load_causal_lm(config(folder, dataset="maths", validation=str(validation)), seed=0)
    assert len(both.validation) == 10


def test_llama_factory_mistakes_name_the_file_and_the_fix(tmp_path):
    folder = llama_factory_folder(tmp_path)
    with pytest.raises(UserError, match=r"has no entry 'math'; did you mean 'maths'\?"):
        load_causal_lm(config(folder, dataset="math"), seed=0)
    with pytest.raises(UserError, match=r"'remote' has no file_name \(hub or script"):
        load_causal_lm(config(folder, dataset="remote"), seed=0)
    with pytest.raises(UserError, match=r"3 file entries|2 file entries"):
        load_causal_lm(config(folder), seed=0)
    (folder / "support.json").unlink()
    with pytest.raises(UserError, match=r"names the file 'support.json', but .* does not exist"):
        load_causal_lm(config(folder, dataset="support"), seed=0)
    plain = jsonl(tmp_path / "plain.jsonl", alpaca_rows(10))
    with pytest.raises(UserError, match=r"no dataset_info.json beside .*plain.jsonl"):
        load_causal_lm(config(plain, dataset="maths"), seed=0)
    info = json.loads((folder / "dataset_info.json").read_text())
    info["maths"]["columns"]["response"] = "answer"
    (folder / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"reads 'output' from the column 'answer'.*Fix the entry"):
        load_causal_lm(config(folder / "maths.jsonl"), seed=0)


def test_a_misspelt_dataset_key_names_the_close_key(tmp_path):
    from tunesmith.recipe import load_recipe

    recipe = {"task": "causal-lm", "data": {"train": "x.jsonl", "datset": "maths"}}
    with pytest.raises(UserError, match=r"data.datset: unknown key; did you mean 'dataset'\?"):
        load_recipe(recipe)
