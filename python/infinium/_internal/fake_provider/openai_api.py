"""The fake provider's OpenAI endpoints: ``/chat/completions``, ``/responses``
(JSON, and the event sequence ``openai``'s stream parser accumulates) and
``/embeddings``."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from typing import Any, Callable, Dict, List, Optional

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

__all__ = ["chat_completions", "embeddings", "responses"]


def _refused(x: Exchange, model: str) -> bool:
    """Answer the error a model named ``error-<status>`` asks for (True), or nothing."""
    status = x.error_status(model)
    if status:
        error = {"message": f"fake {status} for {model}", "type": "server_error"}
        x.json(status, {"error": dict(error, param=None, code=None)})
    return status is not None


def _last_user(messages: List[Dict[str, Any]]) -> str:
    return next((" ".join(texts(m)) for m in reversed(messages) if m.get("role") == "user"), "")


def _structured(fmt: Any, schema_of: Callable[[Dict[str, Any]], Any], prompt: str) -> Optional[str]:
    """The JSON text of a ``json_schema`` output format, or None."""
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return json.dumps(schema_instance(schema_of(fmt), prompt))
    return None


# -- chat completions -------------------------------------------------------------------


def _chat_schema(fmt: Dict[str, Any]) -> Any:
    spec = fmt.get("json_schema")
    return spec.get("schema") if isinstance(spec, dict) else None


def chat_completions(x: Exchange) -> None:
    body, model = x.body, x.model()
    if _refused(x, model):
        return
    messages = dicts(body.get("messages"))
    last = messages[-1] if messages else {}
    after_tool = last.get("role") == "tool"
    prompt = _last_user(messages)
    tools = [
        (str(t["function"].get("name", "")), t["function"].get("parameters"))
        for t in dicts(body.get("tools"))
        if isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    named = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    tool = None if after_tool else choose_tool(tools, choice, named)
    text = reply_text(model, " ".join(texts(last)) if after_tool else prompt)
    text = _structured(body.get("response_format"), _chat_schema, prompt) or text
    arguments = json.dumps(tool_arguments(tool[1], prompt)) if tool else ""
    prompt_tokens = words(texts(messages))
    completion_tokens = len((arguments if tool else text).split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": x.header_int("x-fake-cached-tokens"),
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": x.header_int("x-fake-reasoning-tokens"),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    created = int(time.time())
    shown = x.response_model(model)
    call = None
    if tool:
        function = {"name": tool[0], "arguments": arguments}
        call = {"id": "call_fake_0", "type": "function", "function": function}
    finish = "tool_calls" if tool else "stop"
    if not body.get("stream"):
        message: Dict[str, Any] = {"role": "assistant", "content": None if tool else text}
        message["refusal"] = None
        if call:
            message["tool_calls"] = [call]
        choice_out = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        x.json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": created,
                "model": shown,
                "choices": [choice_out],
                "usage": usage,
            },
        )
        return
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(delta: Dict[str, Any], reason: Optional[str] = None) -> str:
        payload: Dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": shown,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }
        if include_usage:
            payload["usage"] = None
        return f"data: {json.dumps(payload)}\n\n"

    x.start_sse(model)
    if call and tool:
        head = dict(call, index=0, function={"name": tool[0], "arguments": ""})
        x.emit(chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
        deltas: List[Dict[str, Any]] = [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in json_pieces(arguments)
        ]
    else:
        x.emit(chunk({"role": "assistant", "content": ""}))
        deltas = [{"content": p} for p in pieces(text, 200 if "long" in model else None)]
    for i, delta in enumerate(deltas):
        failure = x.fails_before(model, i)
        if failure == "error":
            err = {"error": {"message": "fake mid-stream failure", "type": "server_error"}}
            x.emit(f"data: {json.dumps(err)}\n\n")
        if failure:
            return
        x.emit(chunk(delta))
    x.emit(chunk({}, finish))
    if include_usage:
        final = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": shown,
            "choices": [],
            "usage": usage,
        }
        x.emit(f"data: {json.dumps(final)}\n\n")
    x.emit("data: [DONE]\n\n")
    x.end_stream()


# -- Responses ---------------------------------------------------------------------------


def responses(x: Exchange) -> None:
    body, model = x.body, x.model()
    if _refused(x, model):
        return
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else dicts(raw)
    last = items[-1] if items else {}
    after_tool = last.get("type") == "function_call_output"
    prompt = next(
        (" ".join(texts(i.get("content"))) for i in reversed(items) if i.get("role") == "user"),
        "",
    )
    tools = [
        (str(t.get("name", "")), t.get("parameters"))
        for t in dicts(body.get("tools"))
        if t.get("type") == "function"
    ]
    choice = body.get("tool_choice")
    tool = None if after_tool else choose_tool(tools, choice, _name_of(choice))
    text = reply_text(model, " ".join(texts(last)) if after_tool else prompt)
    text_config = body.get("text") if isinstance(body.get("text"), dict) else {}
    fmt = text_config.get("format") if isinstance(text_config, dict) else None
    text = _structured(fmt, lambda f: f.get("schema"), prompt) or text
    arguments = json.dumps(tool_arguments(tool[1], prompt)) if tool else ""
    input_tokens = words(texts(items)) + words(texts(body.get("instructions") or ""))
    output_tokens = len((arguments if tool else text).split())
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": x.header_int("x-fake-cached-tokens"),
            "cache_write_tokens": x.header_int("x-fake-cache-write-tokens"),
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": x.header_int("x-fake-reasoning-tokens")},
        "total_tokens": input_tokens + output_tokens,
    }
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item: Dict[str, Any]
    if tool:
        item = {
            "type": "function_call",
            "id": "fc_fake_0",
            "call_id": "call_fake_0",
            "name": tool[0],
            "arguments": arguments,
            "status": "completed",
        }
    else:
        item = {
            "type": "message",
            "id": "msg_fake_0",
            "role": "assistant",
            "status": "completed",
            "content": [part],
        }
    created = time.time()

    def response(state: str, output: List[Any], with_usage: bool) -> Dict[str, Any]:
        return {
            "id": "resp_fake",
            "object": "response",
            "created_at": created,
            "status": state,
            "model": x.response_model(model),
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": choice if choice is not None else "auto",
            "tools": body.get("tools") or [],
            "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0),
            "instructions": body.get("instructions"),
            "metadata": body.get("metadata") or {},
            "text": text_config or {"format": {"type": "text"}},
            "error": None,
            "incomplete_details": None,
            "usage": usage if with_usage else None,
        }

    if not body.get("stream"):
        x.json(200, response("completed", [item], True))
        return
    _stream_response(x, model, item, part, tool is not None, response)


def _name_of(choice: Any) -> Any:
    return choice.get("name") if isinstance(choice, dict) else None


def _stream_response(
    x: Exchange,
    model: str,
    item: Dict[str, Any],
    part: Dict[str, Any],
    is_tool: bool,
    response: Callable[[str, List[Any], bool], Dict[str, Any]],
) -> None:
    """The Responses event stream of one output ``item`` (a message or a tool call)."""
    seq = iter(range(1_000_000))

    def event(kind: str, **payload: Any) -> str:
        data = {"type": kind, "sequence_number": next(seq), **payload}
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    def failed(i: int) -> bool:
        """The stream fails before delta ``i``: the API's ``error`` event (which the
        ``openai`` package yields rather than raises), or a dropped body."""
        failure = x.fails_before(model, i)
        if failure == "error":
            message = "fake mid-stream failure"
            x.emit(event("error", code="server_error", message=message, param=None))
        return failure is not None

    x.start_sse(model)
    x.emit(event("response.created", response=response("in_progress", [], False)))
    x.emit(event("response.in_progress", response=response("in_progress", [], False)))
    where: Dict[str, Any] = {"item_id": item["id"], "output_index": 0}
    if is_tool:
        started = dict(item, arguments="", status="in_progress")
        x.emit(event("response.output_item.added", item=started, output_index=0))
        arguments = item["arguments"]
        for i, piece in enumerate(json_pieces(arguments)):
            if failed(i):
                return
            x.emit(event("response.function_call_arguments.delta", delta=piece, **where))
        x.emit(event("response.function_call_arguments.done", arguments=arguments, **where))
    else:
        started = dict(item, status="in_progress", content=[])
        x.emit(event("response.output_item.added", item=started, output_index=0))
        where["content_index"] = 0
        x.emit(event("response.content_part.added", part=dict(part, text=""), **where))
        text = part["text"]
        for i, piece in enumerate(pieces(text, 200 if "long" in model else None)):
            if failed(i):
                return
            x.emit(event("response.output_text.delta", delta=piece, logprobs=[], **where))
        x.emit(event("response.output_text.done", text=text, logprobs=[], **where))
        x.emit(event("response.content_part.done", part=part, **where))
    x.emit(event("response.output_item.done", item=item, output_index=0))
    x.emit(event("response.completed", response=response("completed", [item], True)))
    x.end_stream()


# -- embeddings -------------------------------------------------------------------------


def embeddings(x: Exchange) -> None:
    body, model = x.body, x.model()
    if _refused(x, model):
        return
    raw = body.get("input")
    inputs: List[Any] = [raw] if isinstance(raw, str) else list(raw or [])
    if inputs and all(isinstance(t, int) for t in inputs):
        inputs = [inputs]  # one token array
    dimensions = body.get("dimensions")
    dims = dimensions if isinstance(dimensions, int) and 0 < dimensions <= 4096 else 8
    data = []
    tokens = 0
    for index, value in enumerate(inputs):
        if isinstance(value, str):
            tokens += len(value.split())
            seed = value.encode()
        else:
            tokens += len(value) if isinstance(value, list) else 1
            seed = json.dumps(value).encode()
        digest = hashlib.sha256(seed).digest()
        vector = [(digest[i % len(digest)] - 128) / 128.0 for i in range(dims)]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    x.json(
        200,
        {
            "object": "list",
            "data": data,
            "model": x.response_model(model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )
