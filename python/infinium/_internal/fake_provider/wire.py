"""What the fake provider's endpoints share: one request/answer exchange (JSON or
an event stream, with the failures on demand), the deterministic text and token
rules, and the values it builds from JSON schemas (tool arguments, structured
output)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

__all__ = [
    "Exchange",
    "ProviderRequest",
    "choose_tool",
    "json_pieces",
    "pieces",
    "reply_text",
    "schema_instance",
    "texts",
    "tool_arguments",
    "words",
]


@dataclass
class ProviderRequest:
    """One request the fake provider received (``body`` is the parsed JSON, or ``{}``)."""

    method: str
    path: str
    headers: Dict[str, str]
    body: Any


def reply_text(model: str, last_user: str) -> str:
    """The fake model's answer: ``"Echo from {model}: {last user text}"``."""
    return f"Echo from {model}: {last_user}".strip()


def texts(value: Any) -> Iterator[str]:
    """Every text string inside a message / content / item structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)
    elif isinstance(value, dict):
        for key in ("content", "text", "parts", "system", "output"):
            if key in value:
                yield from texts(value[key])


def words(found: Iterator[str]) -> int:
    """The token count of the fake models: whitespace-separated words."""
    return sum(len(t.split()) for t in found)


def pieces(text: str, n: Optional[int] = None) -> List[str]:
    """``text`` cut at its spaces (the streamed deltas), or ``n`` of them, cycling."""
    parts = text.split(" ")
    cut = [w + " " for w in parts[:-1]] + [parts[-1]]
    if n is not None:
        cut = (cut * (n // max(len(cut), 1) + 1))[:n]
    return cut


def json_pieces(text: str) -> List[str]:
    """A JSON string cut in a few pieces, as argument deltas arrive."""
    size = max(1, len(text) // 3)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- values from JSON schemas ---------------------------------------------------------


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
    ``minimum`` / ``maximum``), booleans true, enums / consts their (first) value."""
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
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {k: schema_instance(v, text, root, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [schema_instance(schema.get("items") or {}, text, root, depth + 1)]
    if kind in ("integer", "number"):
        value: float = len(text.split())
        if isinstance(schema.get("minimum"), (int, float)):
            value = max(value, schema["minimum"])
        if isinstance(schema.get("maximum"), (int, float)):
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01"}.get(
        str(schema.get("format")), text
    )


def tool_arguments(parameters: Any, text: str) -> Dict[str, Any]:
    """A tool call's arguments: an object valid against the tool's parameters schema."""
    value = schema_instance(parameters or {"type": "object"}, text)
    return value if isinstance(value, dict) else {}


Tool = Tuple[str, Any]  # (name, parameters schema)


def choose_tool(tools: List[Tool], choice: Any, choice_name: Any) -> Optional[Tool]:
    """The tool the model calls (the one named, else the first), or None (no tools,
    or a choice of ``none``)."""
    if not tools or choice in ("none", "NONE"):
        return None
    for tool in tools:
        if choice_name and tool[0] == choice_name:
            return tool
    return tools[0]


def dicts(value: Any) -> List[Dict[str, Any]]:
    """The dict items of a list (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# -- one exchange -----------------------------------------------------------------------


class Exchange:
    """One request and its answer: JSON, or an event stream. A model named
    ``error-<status>`` (or the header ``x-fake-status``) gets that status; in a
    stream, a model containing ``midstream-error`` gets the provider's error event
    and one containing ``midstream-drop`` a chunked body cut short."""

    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        req: ProviderRequest,
        chunk_delay: float,
        model_versions: Mapping[str, str],
    ) -> None:
        self.h = handler
        self.req = req
        self.body: Dict[str, Any] = req.body if isinstance(req.body, dict) else {}
        self.chunk_delay = chunk_delay
        self.model_versions = model_versions
        self.chunked = False
        self.started = False

    def model(self) -> str:
        return str(self.body.get("model", "unknown"))

    def response_model(self, model: str) -> str:
        """The model a response names for a requested ``model``."""
        return self.model_versions.get(model, model)

    def error_status(self, model: str) -> Optional[int]:
        m = re.match(r"^(?:models/)?error-(\d{3})", model)
        if m:
            return int(m.group(1))
        forced = self.req.headers.get("x-fake-status", "")
        return int(forced) if forced.isdigit() else None

    def header_int(self, name: str) -> int:
        value = self.req.headers.get(name, "")
        return int(value) if value.isdigit() else 0

    def json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.started = True
        h = self.h
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def start_sse(self, model: str) -> None:
        """Start an event stream; a ``midstream-drop`` model gets a chunked body (so
        that cutting it short is a transport error, not a normal end)."""
        self.chunked = "midstream-drop" in model
        self.started = True
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        if self.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

    def emit(self, text: str) -> None:
        data = text.encode()
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.h.wfile.write(data)
        self.h.wfile.flush()
        if self.chunk_delay:
            time.sleep(self.chunk_delay)

    def end_stream(self) -> None:
        if self.chunked:
            self.h.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def fails_before(model: str, i: int) -> Optional[str]:
        """``"error"`` / ``"drop"`` when the stream of ``model`` fails before item ``i``."""
        if i != 1:
            return None
        if "midstream-error" in model:
            return "error"
        if "midstream-drop" in model:
            return "drop"
        return None
