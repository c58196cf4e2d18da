"""The fake provider's loopback HTTP server (see the package docstring)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Mapping, Optional

from . import anthropic_api, gemini_api, openai_api
from .wire import Exchange, ProviderRequest, reply_text

__all__ = ["FakeProvider"]


class FakeProvider:
    """A local stand-in for the OpenAI, Anthropic and Gemini APIs, on a free port of
    127.0.0.1, that the real provider packages can be pointed at::

        with FakeProvider() as fake:
            OpenAI(base_url=fake.openai_base_url, api_key="x")
            Anthropic(base_url=fake.anthropic_base_url, api_key="x")
            genai.Client(api_key="x", http_options={"base_url": fake.gemini_base_url})

    Args:
        max_lifetime: seconds after which the server shuts itself down.
        chunk_delay: seconds to wait after each streamed chunk.
        model_versions: requested model -> the (dated) model its responses name.

    ``requests`` lists every :class:`ProviderRequest` received, in order.

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
    ``x-fake-reasoning-tokens`` (OpenAI ``reasoning_tokens``, Gemini ``thoughtsTokenCount``,
    Anthropic ``thinking_tokens``).
    ``model_versions`` maps a requested model to the (dated) model the response names.

    Errors on demand: a model named ``error-<status>`` (or the header
    ``x-fake-status: <status>``) answers that status with the provider's error body; a model
    containing ``midstream-error`` fails after the first streamed chunk with the provider's
    error event; a model containing ``midstream-drop`` drops the connection after the
    first streamed chunk (a chunked body cut short: a transport error in every SDK); a model
    containing ``long`` streams 200 chunks.
    """

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
        self._closed = False
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no Nagle + delayed-ACK stalls

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                provider._handle(self)

            do_GET = do_POST

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.openai_base_url = self.url + "/v1"
        self.anthropic_base_url = self.url
        self.gemini_base_url = self.url
        # A short poll: close() (shutdown) waits up to one interval.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(max_lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Stop the server (idempotent)."""
        with self._lock:
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

    def __repr__(self) -> str:
        return f"FakeProvider(url={self.url!r})"

    # -- answering ------------------------------------------------------------------

    reply_text = staticmethod(reply_text)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = h.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = ProviderRequest(h.command, h.path, headers, body)
        with self._lock:
            self.requests.append(req)
        x = Exchange(h, req, self.chunk_delay, self.model_versions)
        try:
            self._dispatch(x)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
        except Exception as exc:  # a request the fake cannot answer: say so, stay up
            if x.started:
                h.close_connection = True
            else:
                message = f"fake provider cannot answer this request: {exc!r}"
                x.json(400, {"error": {"message": message, "type": "invalid_request_error"}})

    def _dispatch(self, x: Exchange) -> None:
        path = x.req.path.split("?", 1)[0]
        if path.endswith("/chat/completions"):
            self._openai(x)
        elif path.endswith("/responses"):
            self._responses(x)
        elif path.endswith("/embeddings"):
            self._embeddings(x)
        elif path.endswith("/messages"):
            self._anthropic(x)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(x, path)
        else:
            x.json(404, {"error": {"message": f"no route {path}"}})

    # One method per endpoint, so that a test can answer one differently.

    def _openai(self, x: Exchange) -> None:
        openai_api.chat_completions(x)

    def _responses(self, x: Exchange) -> None:
        openai_api.responses(x)

    def _embeddings(self, x: Exchange) -> None:
        openai_api.embeddings(x)

    def _anthropic(self, x: Exchange) -> None:
        anthropic_api.messages(x)

    def _gemini(self, x: Exchange, path: str) -> None:
        gemini_api.generate_content(x, path)
