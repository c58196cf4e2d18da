"""A real loopback HTTP server speaking enough of the LLM providers' APIs for tests.

Point the real SDK clients at it::

    with FakeProvider() as fake:
        OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
        Anthropic(base_url=fake.anthropic_base_url, api_key="x", max_retries=0)
        genai.Client(api_key="x", http_options={"base_url": fake.gemini_base_url})

Endpoints: OpenAI ``POST /v1/chat/completions`` (JSON, or SSE with ``stream: true``;
a final usage chunk when ``stream_options.include_usage``), Anthropic
``POST /v1/messages`` (JSON, or SSE ``message_start`` / ``content_block_delta`` /
``message_delta`` / ``message_stop``), Gemini ``POST /v1beta/models/{m}:generateContent``
and ``:streamGenerateContent?alt=sse`` (``usageMetadata``).

Deterministic: the reply is ``"Echo from {model}: {last user text}"``; prompt tokens =
words in all input texts, completion tokens = words in the reply (Gemini streams carry
cumulative usage). Errors on demand: a model named ``error-<status>`` (or the header
``x-fake-status: <status>``) answers that status with the provider's error body; a model
containing ``midstream-error`` fails after the first streamed chunk; a model containing
``long`` streams 200 chunks. The server shuts itself down after ``max_lifetime`` seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional

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
        for key in ("content", "text", "parts", "system"):
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


class FakeProvider:
    def __init__(self, *, max_lifetime: float = 600.0, chunk_delay: float = 0.0) -> None:
        self.requests: List[ProviderRequest] = []
        self.chunk_delay = chunk_delay
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

    @staticmethod
    def _error_status(model: str, headers: Dict[str, str]) -> Optional[int]:
        m = re.match(r"^(?:models/)?error-(\d{3})", model)
        if m:
            return int(m.group(1))
        forced = headers.get("x-fake-status")
        return int(forced) if forced else None

    @staticmethod
    def _send_json(h: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _start_sse(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

    def _emit(self, h: BaseHTTPRequestHandler, text: str) -> None:
        h.wfile.write(text.encode())
        h.wfile.flush()
        if self.chunk_delay:
            time.sleep(self.chunk_delay)

    def _dispatch(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        path = req.path.split("?", 1)[0]
        if path.endswith("/chat/completions"):
            self._openai(h, req)
        elif path.endswith("/messages"):
            self._anthropic(h, req)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(h, req, path)
        else:
            self._send_json(h, 404, {"error": {"message": f"no route {path}"}})

    # -- OpenAI -------------------------------------------------------------------

    def _openai(self, h: BaseHTTPRequestHandler, req: ProviderRequest) -> None:
        body = req.body
        model = str(body.get("model", "unknown"))
        status = self._error_status(model, req.headers)
        if status:
            self._send_json(
                h,
                status,
                {"error": {"message": f"fake {status} for {model}", "type": "server_error"}},
            )
            return
        messages = body.get("messages") or []
        last_user = next(
            (" ".join(_texts(m)) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        text = self.reply_text(model, last_user)
        prompt_tokens = _words(_texts(messages))
        completion_tokens = len(text.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        created = int(time.time())
        if not body.get("stream"):
            self._send_json(
                h,
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
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
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return f"data: {json.dumps(payload)}\n\n"

        self._start_sse(h)
        self._emit(h, chunk({"role": "assistant", "content": ""}))
        pieces = _pieces(text, 200 if "long" in model else None)
        for i, piece in enumerate(pieces):
            if i == 1 and "midstream-error" in model:
                err = {"error": {"message": "fake mid-stream failure", "type": "server_error"}}
                self._emit(h, f"data: {json.dumps(err)}\n\n")
                return
            self._emit(h, chunk({"content": piece}))
        self._emit(h, chunk({}, "stop"))
        if include_usage:
            final = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            self._emit(h, f"data: {json.dumps(final)}\n\n")
        self._emit(h, "data: [DONE]\n\n")

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
        last_user = next(
            (" ".join(_texts(m)) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        text = self.reply_text(model, last_user)
        input_tokens = _words(_texts(messages)) + _words(_texts(body.get("system") or ""))
        output_tokens = len(text.split())
        if not body.get("stream"):
            self._send_json(
                h,
                200,
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                },
            )
            return

        def event(kind: str, payload: Dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n"

        self._start_sse(h)
        self._emit(
            h,
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
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
            if i == 1 and "midstream-error" in model:
                self._emit(
                    h,
                    event(
                        "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                    ),
                )
                return
            self._emit(
                h,
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                ),
            )
        self._emit(h, event("content_block_stop", {"index": 0}))
        self._emit(
            h,
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
        )
        self._emit(h, event("message_stop", {}))

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
        last_user = " ".join(_texts(contents[-1])) if contents else ""
        text = self.reply_text(model, last_user)
        prompt_tokens = _words(_texts(contents))
        total_completion = len(text.split())

        def response(part: str, completion: int, done: bool) -> Dict[str, Any]:
            candidate: Dict[str, Any] = {
                "content": {"parts": [{"text": part}], "role": "model"},
                "index": 0,
            }
            if done:
                candidate["finishReason"] = "STOP"
            usage: Dict[str, Any] = {"promptTokenCount": prompt_tokens}
            if completion:
                usage["candidatesTokenCount"] = completion
                usage["totalTokenCount"] = prompt_tokens + completion
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

        if method == "generateContent":
            self._send_json(h, 200, response(text, total_completion, True))
            return
        self._start_sse(h)
        pieces = _pieces(text, 200 if "long" in model else None)
        done_words = 0
        for i, piece in enumerate(pieces):
            done_words += len(piece.split())
            last = i == len(pieces) - 1
            payload = response(piece, done_words if last else 0, last)
            self._emit(h, f"data: {json.dumps(payload)}\r\n\r\n")
