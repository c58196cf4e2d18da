"""The fake provider's Gemini endpoints: ``models/{m}:generateContent`` and
``:streamGenerateContent?alt=sse`` (cumulative ``usageMetadata`` on the last chunk),
with ``functionCall`` parts when ``functionDeclarations`` are given."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from .wire import Exchange, choose_tool, dicts, pieces, reply_text, texts, tool_arguments, words

__all__ = ["generate_content"]


def _declared_tools(body: Dict[str, Any]) -> List[Any]:
    found = []
    for tool in dicts(body.get("tools")):
        for d in dicts(tool.get("functionDeclarations")):
            schema = (
                d.get("parametersJsonSchema")
                or d.get("parameters_json_schema")
                or d.get("parameters")
            )
            found.append((str(d.get("name", "")), schema))
    return found


def generate_content(x: Exchange, path: str) -> None:
    m = re.search(r"/models/([^/:]+):(generateContent|streamGenerateContent)$", path)
    model, method = (m.group(1), m.group(2)) if m else ("unknown", "generateContent")
    status = x.error_status(model)
    if status:
        error = {"code": status, "message": f"fake {status} for {model}", "status": "INTERNAL"}
        x.json(status, {"error": error})
        return
    contents = dicts(x.body.get("contents"))
    last_parts = dicts(contents[-1].get("parts")) if contents else []
    answers = [
        p["functionResponse"] for p in last_parts if isinstance(p.get("functionResponse"), dict)
    ]
    prompt = " ".join(texts(contents[-1])) if contents else ""
    config = x.body.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    calling = calling if isinstance(calling, dict) else {}
    allowed = calling.get("allowedFunctionNames")
    named = allowed[0] if isinstance(allowed, list) and allowed else None
    tool = None if answers else choose_tool(_declared_tools(x.body), calling.get("mode"), named)
    if answers:
        result = answers[-1].get("response")
        prompt = result if isinstance(result, str) else json.dumps(result)
    text = reply_text(model, prompt)
    prompt_tokens = words(texts(contents))
    cached = x.header_int("x-fake-cached-tokens")
    thoughts = x.header_int("x-fake-reasoning-tokens")

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
        version = x.response_model(model)
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": version}

    parts: List[Dict[str, Any]]
    whole: Optional[Dict[str, Any]] = None
    if tool:
        args = tool_arguments(tool[1], prompt)
        parts = [{"functionCall": {"name": tool[0], "args": args}}]
        whole, total = parts[0], len(json.dumps(args).split())
    else:
        parts = [{"text": p} for p in pieces(text, 200 if "long" in model else None)]
        total = sum(len(p["text"].split()) for p in parts)
    if method == "generateContent":
        x.json(200, response(whole or {"text": text}, total if tool else len(text.split()), True))
        return
    x.start_sse(model)
    for i, part in enumerate(parts):
        failure = x.fails_before(model, i)
        if failure == "error":
            err = {"error": {"code": 500, "message": "fake mid-stream failure"}}
            x.emit(f"data: {json.dumps(err)}\r\n\r\n")
        if failure:
            return
        last = i == len(parts) - 1
        x.emit(f"data: {json.dumps(response(part, total if last else 0, last))}\r\n\r\n")
    x.end_stream()
