"""The fake provider's Anthropic endpoint: ``/v1/messages`` (also the beta path), JSON
or the event stream (``message_start``, ``content_block_*``, ``message_delta``,
``message_stop``), with ``tool_use`` blocks streamed as ``input_json_delta``."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from .wire import (
    Exchange,
    choose_tool,
    dicts,
    json_pieces,
    pieces,
    reply_text,
    schema_instance,
    texts,
    tool_arguments,
    words,
)

__all__ = ["messages"]


def _tool_results(message: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [b for b in dicts(message.get("content")) if b.get("type") == "tool_result"]


def messages(x: Exchange) -> None:
    body, model = x.body, x.model()
    status = x.error_status(model)
    if status:
        error = {"type": "api_error", "message": f"fake {status} for {model}"}
        x.json(status, {"type": "error", "error": error})
        return
    turns = dicts(body.get("messages"))
    results = _tool_results(turns[-1]) if turns else []
    prompt = next(
        (
            " ".join(texts(m))
            for m in reversed(turns)
            if m.get("role") == "user" and not _tool_results(m)
        ),
        "",
    )
    tools = [
        (str(t.get("name", "")), t.get("input_schema"))
        for t in dicts(body.get("tools"))
        if "input_schema" in t
    ]
    choice = body.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    tool = None if results else choose_tool(tools, choice.get("type"), choice.get("name"))
    text = reply_text(model, " ".join(texts(results)) if results else prompt)
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        text = json.dumps(schema_instance(fmt.get("schema"), prompt))
    tool_input = tool_arguments(tool[1], prompt) if tool else None
    arguments = json.dumps(tool_input) if tool else ""
    input_tokens = words(texts(turns)) + words(texts(body.get("system") or ""))
    output_tokens = len(text.split()) + len(arguments.split())
    usage: Dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": x.header_int("x-fake-cache-write-tokens"),
        "cache_read_input_tokens": x.header_int("x-fake-cached-tokens"),
    }
    thinking = x.header_int("x-fake-reasoning-tokens")
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    blocks: List[Dict[str, Any]] = [{"type": "text", "text": text}]
    if tool:
        blocks.append(
            {"type": "tool_use", "id": "toolu_fake_0", "name": tool[0], "input": tool_input}
        )
    stop_reason = "tool_use" if tool else "end_turn"
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": x.response_model(model),
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        x.json(200, message)
        return

    def event(kind: str, payload: Dict[str, Any]) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n"

    x.start_sse(model)
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    x.emit(event("message_start", {"message": start}))
    text_block = {"type": "text", "text": ""}
    x.emit(event("content_block_start", {"index": 0, "content_block": text_block}))
    x.emit(event("ping", {}))
    for i, piece in enumerate(pieces(text, 200 if "long" in model else None)):
        failure = x.fails_before(model, i)
        if failure == "error":
            error = {"type": "overloaded_error", "message": "Overloaded"}
            x.emit(event("error", {"error": error}))
        if failure:
            return
        delta = {"type": "text_delta", "text": piece}
        x.emit(event("content_block_delta", {"index": 0, "delta": delta}))
    x.emit(event("content_block_stop", {"index": 0}))
    if tool:
        use = {"type": "tool_use", "id": "toolu_fake_0", "name": tool[0], "input": {}}
        x.emit(event("content_block_start", {"index": 1, "content_block": use}))
        for piece in json_pieces(arguments):
            delta = {"type": "input_json_delta", "partial_json": piece}
            x.emit(event("content_block_delta", {"index": 1, "delta": delta}))
        x.emit(event("content_block_stop", {"index": 1}))
    end = {"stop_reason": stop_reason, "stop_sequence": None}
    x.emit(event("message_delta", {"delta": end, "usage": {"output_tokens": output_tokens}}))
    x.emit(event("message_stop", {}))
    x.end_stream()
