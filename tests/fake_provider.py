"""A real loopback HTTP server speaking enough of the LLM providers' APIs for tests.

Point the real SDK clients at it::

    with FakeProvider() as fake:
        OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
        Anthropic(base_url=fake.anthropic_base_url, api_key="x", max_retries=0)
        genai.Client(api_key="x", http_options={"base_url": fake.gemini_base_url})

Endpoints (the wire format of the real APIs, as the ``openai`` / ``anthropic`` /
``google-genai`` packages parse it):

- OpenAI ``POST /v1/chat/completions``: JSON, or SSE with ``stream: true`` (a final usage
  chunk when ``stream_options.include_usage``); ``tool_calls`` when ``tools`` are given;
  JSON content matching ``response_format``'s ``json_schema`` (``chat.completions.parse``).
- OpenAI ``POST /v1/responses``: JSON, or SSE with ``stream: true`` (``response.created``,
  ``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
  ``response.output_text.delta`` ..., ``response.output_text.done``,
  ``response.content_part.done``, ``response.output_item.done`` or, for a tool call,
  ``response.function_call_arguments.delta`` ... / ``.done``, then ``response.completed``
  with usage); a ``function_call`` output item when function ``tools`` are given; JSON
  text matching ``text.format``'s ``json_schema`` (``responses.parse``).
- OpenAI ``POST /v1/embeddings`` (``float`` or ``base64`` vectors; prompt tokens only).
- Anthropic ``POST /v1/messages`` (also the beta path): JSON, or SSE ``message_start`` /
  ``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` /
  ``message_delta`` / ``message_stop``; a ``tool_use`` block (streamed as
  ``input_json_delta``) when ``tools`` are given; JSON text matching
  ``output_config.format`` (``messages.parse``).
- Gemini ``POST /v1beta/models/{m}:generateContent`` and
  ``:streamGenerateContent?alt=sse`` (``usageMetadata``); a ``functionCall`` part when
  ``functionDeclarations`` are given.

Deterministic: the reply is ``"Echo from {model}: {last user text}"``; prompt tokens =
words in all input texts, completion tokens = words in the reply (Gemini streams carry
cumulative usage).

Tools: when the request offers function tools and its last turn is not a tool result,
the model calls one tool (the one ``tool_choice`` names, else the first; none when
``tool_choice`` is ``"none"``) with arguments built from the tool's JSON schema: every
property filled, strings with the last user text, integers/numbers with its word
count, booleans ``true``, enums their first value. After a tool result the reply is
``"Echo from {model}: {tool result text}"``. Structured output follows the same rule.

Token details on demand, by request header: ``x-fake-cached-tokens`` (OpenAI
``cached_tokens``, Anthropic ``cache_read_input_tokens``, Gemini
``cachedContentTokenCount``), ``x-fake-cache-write-tokens`` (Anthropic
``cache_creation_input_tokens``, Responses ``cache_write_tokens``) and
``x-fake-reasoning-tokens`` (OpenAI ``reasoning_tokens``, Gemini ``thoughtsTokenCount``).
``model_versions`` maps a requested model to the (dated) model the response names.

Errors on demand: a model named ``error-<status>`` (or the header
``x-fake-status: <status>``) answers that status with the provider's error body; a model
containing ``midstream-error`` fails after the first streamed chunk with the provider's
error event; a model containing ``midstream-drop`` drops the connection after the
first streamed chunk (a chunked body cut short: a transport error in every SDK); a model
containing ``long`` streams 200 chunks. The server shuts itself down after
``max_lifetime`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

__all__ = ["FakeProvider", "ProviderRequest"]


@dataclass
class ProviderRequest:
    method: str
    path: str
    headers: Dict[str, str]
    body: Any


def _texts(value: Any) -> Iterator[str]:
    """Every text string inside a message/content structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in ("content", "text", "parts", "system", "output"):
            if key in value:
                yield from _texts(value[key])


def _words(texts: Iterator[str]) -> int:
    return sum(len(t.split()) for t in texts)


def _pieces(text: str, n: Optional[int] = None) -> List[str]:
    words = text.split(" ")
    pieces = [w + " " for w in words[:-1]] + [words[-1]]
    if n is not None:
        pieces = (pieces * (n // max(len(pieces), 1) + 1))[:n]
    return pieces


def _json_pieces(text: str) -> List[str]:
    """A JSON string cut in a few pieces, as argument deltas arrive."""
    size = max(1, len(text) // 3)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- values from JSON schemas (tool arguments, structured output) ----------------------


def _resolve(schema: Any, root: Any) -> Any:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if isinstance(ref, str) and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}
    return schema


def schema_instance(schema: Any, text: str, root: Any = None, depth: int = 0) -> Any:
    """A deterministic value valid against a (simple) JSON schema: every property
    filled, strings = ``text``, integers / numbers = its word count (within
    ``minimum``/``maximum``), booleans true, enums / consts their (first) value."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > 8:
        return text
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            real = [o for o in options if _resolve(o, root).get("type") not in ("null", "NULL")]
            return schema_instance((real or options)[0], text, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind or ("object" if "properties" in schema else "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: schema_instance(v, text, root, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [schema_instance(schema.get("items") or {}, text, root, depth + 1)]
    if kind in ("integer", "number"):
        value = len(text.split())
        if isinstance(schema.get("minimum"), (int, float)):
            value = max(value, schema["minimum"])
        if isinstance(schema.get("maximum"), (int, float)):
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    if fmt == "date":
        return "2026-01-01"
    return text


def tool_arguments(parameters: Any, text: str) -> Dict[str, Any]:
    """A tool call's arguments: an object valid against the tool's parameters schema."""
    value = schema_instance(parameters or {"type": "object"}, text)
    return value if isinstance(value, dict) else {}


def _choose_tool(
    tools: List[Tuple[str, Any]], choice: Any, choice_name: Optional[str]
) -> Optional[Tuple[str, Any]]:
    """The (name, parameters) of the tool the model calls, or None."""
    if not tools or choice == "none" or choice == "NONE":
        return None
    if choice_name:
        for tool in tools:
            if tool[0] == choice_name:
                return tool
    return tools[0]


class FakeProvider:
    def __init__(
        self,
        *,
        max_lifetime: float = 600.0,
        chunk_delay: float = 0.0,
        model_versions: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.requests: List[ProviderRequest] = []
        self.chunk_delay = chunk_delay
        self.model_versions: Dict[str, str] = dict(model_versions or {})
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no Nagle + delayed-ACK stalls

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                req = ProviderRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with provider._lock:
                    provider.requests.append(req)
                try:
                    provider._dispatch(self, req)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.openai_base_url = self.url + "/v1"
        self.anthropic_base_url = self.url
        self.gemini_base_url = self.url
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(max_lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------

    @staticmethod
    def reply_text(model: str, last_user: str) -> str:
        return f"Echo from {model}: {last_user}".strip()

    def response_model(self, model: str) -> str:
        """The model a response names for a requested ``model``."""
        return self.model_versions.get(model, model)

    @staticmethod
    def _error_status(model: str, headers: Dict[str, str]) -> Optional[int]:
        m = re.match(r"^(?:models/)?error-(\d{3})", model)
        if m:
            return int(m.group(1))
        forced = headers.get("x-fake-status")
        return int(forced) if forced else None

    @staticmethod
    def _header_int(req: ProviderRequest, name: str) -> int:
        try:
            return int(req.headers.get(name) or 0)
        except ValueError:
            return 0

    @staticmethod
    def _send_json(h: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _start_sse(self, h: BaseHTTPRequestHandler, model: str = "") -> None:
        """Start an event stream; a ``midstream-drop`` model gets a chunked body
        (so that cutting it short is a transport error, not a normal end)."""
        chunked = "midstream-drop" in model
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        h._fake_chunked = chunked  # type: ignore[attr-defined]

    def _emit(self, h: BaseHTTPRequestHandler, text: str) -> None:
        data = text.encode()
        if getattr(h, "_fake_chunked", False):
            data = b"%x\r\n%s\r\n" % (len(data), data)
        h.wfile.write(data)
        h.wfile.flush()
        if self.chunk_delay:
            time.sleep(self.chunk_delay)

    @staticmethod
    def _fails_midstream(model: str, i: int) -> Optional[str]:
        """``"error"`` / ``"drop"`` when the stream of ``model`` fails before item ``i``."""
        if i != 1:
            return None
        if "midstream-error" in model:
            return "error"
        if "midstream-drop" in model:
            return "drop"
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        path = req.path.split("?", 1)[0]
        if path.endswith("/chat/completions"):
            self._openai(h, req)
        elif path.endswith("/responses"):
            self._responses(h, req)
        elif path.endswith("/embeddings"):
            self._embeddings(h, req)
        elif path.endswith("/messages"):
            self._anthropic(h, req)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(h, req, path)
        else:
            self._send_json(h, 404, {"error": {"message": f"no route {path}"}})

    def _openai_error(self, h: BaseHTTPRequestHandler, status: int, model: str) -> None:
        self._send_json(
            h,
            status,
            {
                "error": {
                    "message": f"fake {status} for {model}",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        )

    # -- OpenAI chat completions ----------------------------------------------------

    def _openai(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        body = req.body
        model = str(body.get("model", "unknown"))
        status = self._error_status(model, req.headers)
        if status:
            self._openai_error(h, status, model)
            return
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        last_user = next(
            (" ".join(_texts(m)) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        tools = [
            (t["function"].get("name", ""), t["function"].get("parameters"))
            for t in body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        choice = body.get("tool_choice")
        choice_name = (
            (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        )
        tool = None if last.get("role") == "tool" else _choose_tool(tools, choice, choice_name)
        basis = " ".join(_texts(last)) if last.get("role") == "tool" else last_user
        text = self.reply_text(model, basis)
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            text = json.dumps(schema_instance(schema, last_user))
        arguments = json.dumps(tool_arguments(tool[1], last_user)) if tool else ""
        prompt_tokens = _words(_texts(messages))
        completion_tokens = len((arguments if tool else text).split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self._header_int(req, "x-fake-cached-tokens"),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": self._header_int(req, "x-fake-reasoning-tokens"),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        created = int(time.time())
        shown_model = self.response_model(model)
        tool_call = (
            {
                "id": "call_fake_0",
                "type": "function",
                "function": {"name": tool[0], "arguments": arguments},
            }
            if tool
            else None
        )
        finish = "tool_calls" if tool else "stop"
        if not body.get("stream"):
            message: Dict[str, Any] = {
                "role": "assistant",
                "content": None if tool else text,
                "refusal": None,
            }
            if tool_call:
                message["tool_calls"] = [tool_call]
            self._send_json(
                h,
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": shown_model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> str:
            payload: Dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": shown_model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return f"data: {json.dumps(payload)}\n\n"

        self._start_sse(h, model)
        if tool_call:
            head = dict(tool_call, index=0, function={"name": tool[0], "arguments": ""})
            self._emit(h, chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
            deltas = [
                {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                for piece in _json_pieces(arguments)
            ]
        else:
            self._emit(h, chunk({"role": "assistant", "content": ""}))
            deltas = [
                {"content": piece} for piece in _pieces(text, 200 if "long" in model else None)
            ]
        for i, delta in enumerate(deltas):
            failure = self._fails_midstream(model, i)
            if failure == "error":
                err = {"error": {"message": "fake mid-stream failure", "type": "server_error"}}
                self._emit(h, f"data: {json.dumps(err)}\n\n")
                return
            if failure == "drop":
                return
            self._emit(h, chunk(delta))
        self._emit(h, chunk({}, finish))
        if include_usage:
            final = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": shown_model,
                "choices": [],
                "usage": usage,
            }
            self._emit(h, f"data: {json.dumps(final)}\n\n")
        self._emit(h, "data: [DONE]\n\n")
        if getattr(h, "_fake_chunked", False):
            h.wfile.write(b"0\r\n\r\n")

    # -- OpenAI Responses -----------------------------------------------------------

    def _responses(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        body = req.body
        model = str(body.get("model", "unknown"))
        status = self._error_status(model, req.headers)
        if status:
            self._openai_error(h, status, model)
            return
        raw_input = body.get("input")
        items: List[Any] = (
            [{"role": "user", "content": raw_input}]
            if isinstance(raw_input, str)
            else list(raw_input or [])
        )
        last = items[-1] if items and isinstance(items[-1], dict) else {}
        after_tool = last.get("type") == "function_call_output"
        last_user = next(
            (
                " ".join(_texts(i.get("content")))
                for i in reversed(items)
                if isinstance(i, dict) and i.get("role") == "user"
            ),
            "",
        )
        tools = [
            (t.get("name", ""), t.get("parameters"))
            for t in body.get("tools") or []
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        choice_name = choice.get("name") if isinstance(choice, dict) else None
        tool = None if after_tool else _choose_tool(tools, choice, choice_name)
        text = self.reply_text(model, " ".join(_texts(last)) if after_tool else last_user)
        text_config = body.get("text") if isinstance(body.get("text"), dict) else {}
        fmt = text_config.get("format") if isinstance(text_config, dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            text = json.dumps(schema_instance(fmt.get("schema"), last_user))
        arguments = json.dumps(tool_arguments(tool[1], last_user)) if tool else ""
        input_tokens = _words(_texts(items)) + _words(_texts(body.get("instructions") or ""))
        output_tokens = len((arguments if tool else text).split())
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {
                "cached_tokens": self._header_int(req, "x-fake-cached-tokens"),
                "cache_write_tokens": self._header_int(req, "x-fake-cache-write-tokens"),
            },
            "output_tokens": output_tokens,
            "output_tokens_details": {
                "reasoning_tokens": self._header_int(req, "x-fake-reasoning-tokens")
            },
            "total_tokens": input_tokens + output_tokens,
        }
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        if tool:
            item: Dict[str, Any] = {
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

        def response(status: str, output: List[Any], with_usage: bool) -> Dict[str, Any]:
            return {
                "id": "resp_fake",
                "object": "response",
                "created_at": created,
                "status": status,
                "model": self.response_model(model),
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
            self._send_json(h, 200, response("completed", [item], True))
            return

        seq = iter(range(1_000_000))

        def event(kind: str, **payload: Any) -> str:
            data = {"type": kind, "sequence_number": next(seq), **payload}
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

        self._start_sse(h, model)
        self._emit(h, event("response.created", response=response("in_progress", [], False)))
        self._emit(h, event("response.in_progress", response=response("in_progress", [], False)))
        where = {"item_id": item["id"], "output_index": 0}
        if tool:
            started = dict(item, arguments="", status="in_progress")
            self._emit(h, event("response.output_item.added", item=started, output_index=0))
            for i, piece in enumerate(_json_pieces(arguments)):
                if self._stream_fails(h, model, i, event):
                    return
                self._emit(h, event("response.function_call_arguments.delta", delta=piece, **where))
            self._emit(
                h, event("response.function_call_arguments.done", arguments=arguments, **where)
            )
        else:
            started = dict(item, status="in_progress", content=[])
            self._emit(h, event("response.output_item.added", item=started, output_index=0))
            where["content_index"] = 0
            self._emit(h, event("response.content_part.added", part=dict(part, text=""), **where))
            for i, piece in enumerate(_pieces(text, 200 if "long" in model else None)):
                if self._stream_fails(h, model, i, event):
                    return
                self._emit(
                    h, event("response.output_text.delta", delta=piece, logprobs=[], **where)
                )
            self._emit(h, event("response.output_text.done", text=text, logprobs=[], **where))
            self._emit(h, event("response.content_part.done", part=part, **where))
        self._emit(h, event("response.output_item.done", item=item, output_index=0))
        self._emit(h, event("response.completed", response=response("completed", [item], True)))
        if getattr(h, "_fake_chunked", False):
            h.wfile.write(b"0\r\n\r\n")

    def _stream_fails(self, h: BaseHTTPRequestHandler, model: str, i: int, event: Any) -> bool:
        """A Responses stream's failure before item ``i``: the ``error`` event the API
        sends (the ``openai`` package yields it, it does not raise), or a dropped body."""
        failure = self._fails_midstream(model, i)
        if failure == "error":
            self._emit(
                h,
                event(
                    "error",
                    code="server_error",
                    message="fake mid-stream failure",
                    param=None,
                ),
            )
        return failure is not None

    # -- OpenAI embeddings ----------------------------------------------------------

    def _embeddings(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        body = req.body
        model = str(body.get("model", "unknown"))
        status = self._error_status(model, req.headers)
        if status:
            self._openai_error(h, status, model)
            return
        raw = body.get("input")
        inputs: List[Any] = [raw] if isinstance(raw, str) else list(raw or [])
        if inputs and all(isinstance(t, int) for t in inputs):
            inputs = [inputs]  # one token array
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
        data = []
        tokens = 0
        for index, value in enumerate(inputs):
            if isinstance(value, str):
                tokens += len(value.split())
                seed = value.encode()
            else:
                tokens += len(value)
                seed = json.dumps(value).encode()
            digest = hashlib.sha256(seed).digest()
            vector = [(digest[i % len(digest)] - 128) / 128.0 for i in range(dims)]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send_json(
            h,
            200,
            {
                "object": "list",
                "data": data,
                "model": self.response_model(model),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- Anthropic ----------------------------------------------------------------

    def _anthropic(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        body = req.body
        model = str(body.get("model", "unknown"))
        status = self._error_status(model, req.headers)
        if status:
            self._send_json(
                h,
                status,
                {
                    "type": "error",
                    "error": {"type": "api_error", "message": f"fake {status} for {model}"},
                },
            )
            return
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        content = last.get("content")
        results = [
            b
            for b in (content if isinstance(content, list) else [])
            if b.get("type") == "tool_result"
        ]
        last_user = next(
            (
                " ".join(_texts(m))
                for m in reversed(messages)
                if m.get("role") == "user"
                and not any(
                    isinstance(b, dict) and b.get("type") == "tool_result"
                    for b in (m.get("content") if isinstance(m.get("content"), list) else [])
                )
            ),
            "",
        )
        tools = [
            (t.get("name", ""), t.get("input_schema"))
            for t in body.get("tools") or []
            if isinstance(t, dict) and "input_schema" in t
        ]
        choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
        tool = None if results else _choose_tool(tools, choice.get("type"), choice.get("name"))
        text = self.reply_text(model, " ".join(_texts(results)) if results else last_user)
        fmt = (body.get("output_config") or {}).get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            text = json.dumps(schema_instance(fmt.get("schema"), last_user))
        tool_input = tool_arguments(tool[1], last_user) if tool else None
        arguments = json.dumps(tool_input) if tool else ""
        input_tokens = _words(_texts(messages)) + _words(_texts(body.get("system") or ""))
        output_tokens = len(text.split()) + len(arguments.split())
        cache_read = self._header_int(req, "x-fake-cached-tokens")
        cache_write = self._header_int(req, "x-fake-cache-write-tokens")
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
        }
        blocks: List[Dict[str, Any]] = [{"type": "text", "text": text}]
        if tool:
            blocks.append(
                {"type": "tool_use", "id": "toolu_fake_0", "name": tool[0], "input": tool_input}
            )
        stop_reason = "tool_use" if tool else "end_turn"
        shown_model = self.response_model(model)
        if not body.get("stream"):
            self._send_json(
                h,
                200,
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": shown_model,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return

        def event(kind: str, payload: Dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n"

        self._start_sse(h, model)
        self._emit(
            h,
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": shown_model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": dict(usage, output_tokens=1),
                    }
                },
            ),
        )
        self._emit(
            h,
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
        )
        self._emit(h, event("ping", {}))
        for i, piece in enumerate(_pieces(text, 200 if "long" in model else None)):
            failure = self._fails_midstream(model, i)
            if failure == "error":
                self._emit(
                    h,
                    event(
                        "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                    ),
                )
                return
            if failure == "drop":
                return
            self._emit(
                h,
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                ),
            )
        self._emit(h, event("content_block_stop", {"index": 0}))
        if tool:
            start = {"type": "tool_use", "id": "toolu_fake_0", "name": tool[0], "input": {}}
            self._emit(h, event("content_block_start", {"index": 1, "content_block": start}))
            for piece in _json_pieces(arguments):
                delta = {"type": "input_json_delta", "partial_json": piece}
                self._emit(h, event("content_block_delta", {"index": 1, "delta": delta}))
            self._emit(h, event("content_block_stop", {"index": 1}))
        self._emit(
            h,
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
        )
        self._emit(h, event("message_stop", {}))
        if getattr(h, "_fake_chunked", False):
            h.wfile.write(b"0\r\n\r\n")

    # -- Gemini -------------------------------------------------------------------

    def _gemini(self, h: BaseHTTPRequestHandler, req: ProviderRequest, path: str) -> None:
        m = re.search(r"/models/([^/:]+):(generateContent|streamGenerateContent)$", path)
        model, method = (m.group(1), m.group(2)) if m else ("unknown", "generateContent")
        status = self._error_status(model, req.headers)
        if status:
            self._send_json(
                h,
                status,
                {
                    "error": {
                        "code": status,
                        "message": f"fake {status} for {model}",
                        "status": "INTERNAL",
                    }
                },
            )
            return
        contents = req.body.get("contents") or []
        last_parts = (contents[-1].get("parts") or []) if contents else []
        responses = [
            p["functionResponse"]
            for p in last_parts
            if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)
        ]
        last_user = " ".join(_texts(contents[-1])) if contents else ""
        tools = [
            (
                d.get("name", ""),
                d.get("parametersJsonSchema")
                or d.get("parameters_json_schema")
                or d.get("parameters"),
            )
            for t in req.body.get("tools") or []
            if isinstance(t, dict)
            for d in t.get("functionDeclarations") or []
            if isinstance(d, dict)
        ]
        config = ((req.body.get("toolConfig") or {}).get("functionCallingConfig")) or {}
        allowed = config.get("allowedFunctionNames") or [None]
        tool = None if responses else _choose_tool(tools, config.get("mode"), allowed[0])
        if responses:
            result = responses[-1].get("response")
            last_user = json.dumps(result) if not isinstance(result, str) else result
        text = self.reply_text(model, last_user)
        prompt_tokens = _words(_texts(contents))
        args = tool_arguments(tool[1], last_user) if tool else None
        cached = self._header_int(req, "x-fake-cached-tokens")
        thoughts = self._header_int(req, "x-fake-reasoning-tokens")

        def response(part: Dict[str, Any], completion: int, done: bool) -> Dict[str, Any]:
            candidate: Dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
            if done:
                candidate["finishReason"] = "STOP"
            usage: Dict[str, Any] = {"promptTokenCount": prompt_tokens}
            if completion:
                usage["candidatesTokenCount"] = completion
                usage["totalTokenCount"] = prompt_tokens + completion + thoughts
                if cached:
                    usage["cachedContentTokenCount"] = cached
                if thoughts:
                    usage["thoughtsTokenCount"] = thoughts
            return {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": self.response_model(model),
            }

        if tool:
            parts = [{"functionCall": {"name": tool[0], "args": args}}]
            total_completion = len(json.dumps(args).split())
        else:
            parts = [{"text": p} for p in _pieces(text, 200 if "long" in model else None)]
            total_completion = sum(len(p["text"].split()) for p in parts)
        if method == "generateContent":
            whole = parts[0] if tool else {"text": text}
            completion = total_completion if tool else len(text.split())
            self._send_json(h, 200, response(whole, completion, True))
            return
        self._start_sse(h, model)
        for i, part in enumerate(parts):
            failure = self._fails_midstream(model, i)
            if failure == "error":
                err = {"error": {"code": 500, "message": "fake mid-stream failure"}}
                self._emit(h, f"data: {json.dumps(err)}\r\n\r\n")
                return
            if failure == "drop":
                return
            last = i == len(parts) - 1
            payload = response(part, total_completion if last else 0, last)
            self._emit(h, f"data: {json.dumps(payload)}\r\n\r\n")
        if getattr(h, "_fake_chunked", False):
            h.wfile.write(b"0\r\n\r\n")
