"""What the watch() tests share: the real provider clients pointed at the fake
provider, and readers of the traces the capture server received."""

from __future__ import annotations

from typing import Any, Dict, List

import pydantic


class Weather(pydantic.BaseModel):
    """A structured output type (``parse``): the fake provider fills ``city`` with the
    prompt and ``temp`` with its word count."""

    city: str
    temp: int


USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]

#: A function tool's parameters, and the arguments the fake provider fills in for
#: the prompt "weather in Paris please" (strings = the prompt, ints its word count).
PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "units": {"type": "string", "enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 3},
    },
    "required": ["city", "units", "days"],
    "additionalProperties": False,
}
WEATHER_PROMPT = "weather in Paris please"
WEATHER_ARGS = '{"city": "weather in Paris please", "units": "c", "days": 3}'
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}]
RESPONSES_TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": PARAMS, "strict": True}
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather.", "input_schema": PARAMS}]


def oai(fake: Any, cls: Any = None, **kw: Any) -> Any:
    import openai

    return (cls or openai.OpenAI)(base_url=fake.openai_base_url, api_key="x", max_retries=0, **kw)


def anth(fake: Any, cls: Any = None) -> Any:
    import anthropic

    return (cls or anthropic.Anthropic)(
        base_url=fake.anthropic_base_url, api_key="x", max_retries=0
    )


def gem(fake: Any) -> Any:
    from google import genai

    return genai.Client(api_key="x", http_options={"base_url": fake.gemini_base_url})


def received(server: Any) -> List[Dict[str, Any]]:
    """The trace bodies ``server`` received, in order."""
    return [r.json() for r in server.requests if r.method == "POST" and r.path.endswith("/trace")]


def llm_steps(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [s for s in body.get("steps", []) if s["action"] == "llm_call"]


def only_trace(server: Any) -> Dict[str, Any]:
    """The one trace ``server`` received."""
    (body,) = received(server)
    return body


def tokens(step: Dict[str, Any]) -> Any:
    return (step["llm_call"].get("prompt_tokens"), step["llm_call"].get("completion_tokens"))


def provider_calls(fake: Any, suffix: str) -> int:
    """How many requests the fake provider got on a path ending with ``suffix``."""
    return sum(1 for r in fake.requests if r.path.split("?", 1)[0].endswith(suffix))
