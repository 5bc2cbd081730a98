"""Tool calls and tool results through the chat template, and the loss mask over them."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tests.test_data_causal import WEATHER_TOOL, jsonl, openai_tool_row
from tunesmith.data.causal import load_causal_lm
from tunesmith.recipe import DataConfig
from tunesmith.tasks.causal_lm.chat import tool_support
from tunesmith.tasks.causal_lm.task import CausalLMTask, render, response_spans

TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTOOLS {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message.tool_calls %}<|im_start|>assistant\n"
    "{% for call in message.tool_calls %}<call>{{ call.function | tojson }}</call>{% endfor %}"
    "<|im_end|>\n"
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A chat template with tool support (Qwen-like): calls, results and tool definitions."""


@pytest.fixture
def tokenizer(tiny_llm_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_llm_dir)


@pytest.fixture
def tool_tokenizer(tiny_llm_dir: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tokenizer.chat_template = TOOL_TEMPLATE
    return tokenizer


def tool_messages(tmp_path: Path) -> list[dict]:
    rows = [openai_tool_row(i) for i in range(10)]
    for row in rows:
        row["messages"][-1]["content"] = "the team won the match"  # words the tokenizer knows
    splits = load_causal_lm(DataConfig(train=str(jsonl(tmp_path / "oa.jsonl", rows))), seed=0)
    return sorted(splits.train.examples, key=lambda e: e.row)[0].messages


def scored_text(tokenizer, messages: list[dict]) -> str:
    """What the loss covers, as text: the scored spans of the rendered conversation."""
    text = render(tokenizer, messages, prompt=False)
    return "".join(text[span.start : span.stop] for span in response_spans(tokenizer, messages))


def test_probe_tells_templates_with_tool_support(tokenizer, tool_tokenizer):
    assert tool_support(tokenizer) == (False, False)
    assert tool_support(tool_tokenizer) == (True, True)


def test_a_template_without_tools_gets_readable_plain_turns(tokenizer, tmp_path):
    messages = tool_messages(tmp_path)
    text = render(tokenizer, messages, prompt=False)
    described = "Tools you can call: " + json.dumps([WEATHER_TOOL["function"]])
    assert text == (
        f"<|im_start|>system\nYou can look up the weather.\n\n{described}<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris, day 0?<|im_end|>\n"
        '<|im_start|>assistant\nTool call: {"name": "get_weather", "arguments": '
        '{"city": "Paris"}}<|im_end|>\n'
        "<|im_start|>user\nTool result (get_weather): sunny, 21 C<|im_end|>\n"
        "<|im_start|>assistant\nthe team won the match<|im_end|>\n"
    )
    assert scored_text(tokenizer, messages) == "the team won the match<|im_end|>\n"


def test_a_template_with_tools_gets_them_unchanged(tool_tokenizer, tmp_path):
    messages = tool_messages(tmp_path)
    text = render(tool_tokenizer, messages, prompt=False)
    assert text.startswith(f"<|im_start|>system\nTOOLS {json.dumps([WEATHER_TOOL])}")
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert f"<|im_start|>assistant\n<call>{json.dumps(call)}</call><|im_end|>" in text
    assert "<|im_start|>tool\nsunny, 21 C<|im_end|>" in text
    assert scored_text(tool_tokenizer, messages) == "the team won the match<|im_end|>\n"
    prompt = render(tool_tokenizer, messages[:-1], prompt=True)
    assert prompt.endswith("<|im_start|>tool\nsunny, 21 C<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("with_tools", [False, True])
def test_a_final_tool_call_is_the_target(tokenizer, tool_tokenizer, tmp_path, with_tools):
    """An example that teaches the call itself: its last turn is the call, and is scored."""
    tok = tool_tokenizer if with_tools else tokenizer
    messages = tool_messages(tmp_path)[:3]
    scored = scored_text(tok, messages)
    assert "get_weather" in scored and "Paris" in scored and "look up" not in scored


def test_the_loss_mask_covers_only_the_final_answer(tokenizer, tmp_path):
    rows = [openai_tool_row(i) for i in range(10)]
    for row in rows:
        row["messages"][-1]["content"] = "the team won the match"
    path = jsonl(tmp_path / "oa.jsonl", rows)
    data = DataConfig(train=str(path), validation=str(path), test=str(path))
    task = CausalLMTask(load_causal_lm(data, seed=0), tokenizer, 256, torch.device("cpu"), None)
    row = task.rows["train"][0]
    scored = [target for target in row.targets if target != -100]
    tokens = tokenizer.convert_ids_to_tokens(scored)
    assert "".join(tokens) == "the team won the match<|im_end|>\n"


def test_sharegpt_top_level_system_reaches_the_rendered_text(tokenizer, tmp_path):
    rows = [
        {
            "conversations": [
                {"from": "human", "value": f"question {i}"},
                {"from": "gpt", "value": "the team won the match"},
            ],
            "system": "You are a sports reporter.",
        }
        for i in range(10)
    ]
    splits = load_causal_lm(DataConfig(train=str(jsonl(tmp_path / "sg.jsonl", rows))), seed=0)
    text = render(tokenizer, splits.train.examples[0].messages, prompt=False)
    assert text.startswith("<|im_start|>system\nYou are a sports reporter.<|im_end|>\n")
    assert scored_text(tokenizer, splits.train.examples[0].messages) == (
        "the team won the match<|im_end|>\n"
    )
