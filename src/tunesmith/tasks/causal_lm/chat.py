"""Conversations as the chat template takes them, and the turns the model learns to write.

Tool calls (an assistant message with `tool_calls`) and tool results (role `tool`) go to
the template unchanged when it renders them (found by rendering a probe conversation), with
the row's tool definitions as `tools`. A template that does not is given plain turns
instead: the call as JSON in the assistant's turn (`Tool call: {"name": ..., "arguments":
...}`), the result as a user turn (`Tool result (name): ...`), the tool definitions in the
system message (`Tools you can call: [...]`).

The targets: every assistant turn that writes text, and a tool-call turn only when it is the
last one (the example teaches the call itself); tool results are never scored.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import PreTrainedTokenizerBase

from tunesmith.data.causal import Message

_PROBE_CALL = "tunesmith_probe_call"
_PROBE_RESULT = "tunesmith_probe_result"
_PROBE_TOOL = "tunesmith_probe_tool"
_SUPPORT: dict[str, tuple[bool, bool]] = {}
"""Chat template -> (renders tool calls and results, renders the `tools` definitions)."""


def tool_support(tokenizer: PreTrainedTokenizerBase) -> tuple[bool, bool]:
    """Whether the tokenizer's chat template renders tool calls and tool results, and whether
    it renders the `tools` definitions: tried on a probe conversation, once per template."""
    template = tokenizer.chat_template
    key = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    if key not in _SUPPORT:
        call = {"type": "function", "id": "call_0"}
        call["function"] = {"name": _PROBE_CALL, "arguments": {"x": 1}}
        probe = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": "call_0",
                "name": _PROBE_CALL,
                "content": _PROBE_RESULT,
            },
        ]
        tool = {"type": "function", "function": {"name": _PROBE_TOOL, "parameters": {}}}
        try:
            calls = _apply(tokenizer, probe, None, prompt=True)
            described = _apply(tokenizer, probe[:1], [tool], prompt=True)
        except Exception:  # a template that refuses the tool role or tool calls
            _SUPPORT[key] = (False, False)
        else:
            renders_calls = _PROBE_CALL in calls and _PROBE_RESULT in calls
            _SUPPORT[key] = (renders_calls, renders_calls and _PROBE_TOOL in described)
    return _SUPPORT[key]


def template_turns(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message]
) -> tuple[list[Message], list[dict] | None, list[int]]:
    """The messages as the template takes them, the tool definitions to pass as `tools`
    (None: none, or they are in the system message), and the indices of the target turns."""
    tools = next((m["tools"] for m in messages if m.get("tools")), None)
    has_tools = tools is not None or any(
        m["role"] == "tool" or m.get("tool_calls") for m in messages
    )
    if not has_tools:
        return messages, None, [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    renders_calls, renders_tools = tool_support(tokenizer)
    last = len(messages) - 1
    names = {
        call["id"]: call["function"]["name"]
        for m in messages
        for call in m.get("tool_calls") or []
        if call.get("id")
    }
    turns: list[Message] = []
    targets: list[int] = []
    for i, message in enumerate(messages):
        message = {k: v for k, v in message.items() if k != "tools"}
        if renders_calls:
            turns.append(message)
        elif message["role"] == "tool":
            name = message.get("name") or names.get(message.get("tool_call_id", ""))
            label = f"Tool result ({name})" if name else "Tool result"
            text = f"{label}: {message['content']}"
            if turns and turns[-1]["role"] == "user":  # results of several calls: one turn
                turns[-1] = {**turns[-1], "content": f"{turns[-1]['content']}\n\n{text}"}
            else:
                turns.append({"role": "user", "content": text})
            continue
        elif message.get("tool_calls"):
            calls = [f"Tool call: {_call_json(call)}" for call in message["tool_calls"]]
            text = "\n".join([message["content"], *calls] if message["content"] else calls)
            turns.append({"role": "assistant", "content": text})
        else:
            turns.append(message)
        if message["role"] == "assistant" and (not message.get("tool_calls") or i == last):
            targets.append(len(turns) - 1)
    if tools is not None and not renders_tools:
        described = "Tools you can call: " + json.dumps(
            [tool.get("function", tool) for tool in tools], ensure_ascii=False
        )
        if turns[0]["role"] == "system":
            turns[0] = {**turns[0], "content": f"{turns[0]['content']}\n\n{described}"}
        else:
            turns.insert(0, {"role": "system", "content": described})
            targets = [i + 1 for i in targets]
        tools = None
    return turns, tools, targets


def render_turns(
    tokenizer: PreTrainedTokenizerBase,
    turns: list[Message],
    tools: list[dict] | None,
    prompt: bool,
) -> str:
    """Turns from `template_turns` through the chat template; `prompt`: the assistant's
    turn opened."""
    return _apply(tokenizer, turns, tools, prompt)


def _apply(
    tokenizer: PreTrainedTokenizerBase, turns: list[Any], tools: list[dict] | None, prompt: bool
) -> str:
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        turns, tokenize=False, add_generation_prompt=prompt, continue_final_message=False, **extra
    )


def _call_json(call: dict) -> str:
    function = call.get("function", call)
    body = {"name": function["name"], "arguments": function.get("arguments", {})}
    return json.dumps(body, ensure_ascii=False)
