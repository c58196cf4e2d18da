"""LangChain / LangGraph runs become Infinium traces (``langchain-core`` callbacks).

::

    from infinium.integrations.langchain import InfiniumCallbackHandler
    handler = InfiniumCallbackHandler(client)
    graph.invoke(inputs, config={"callbacks": [handler]})

One root run (the first run the handler sees without a known parent: a graph, a
chain, or a lone model call) becomes one trace. Chat-model and LLM runs become
``llm_inference`` steps (tokens from the message's ``usage_metadata``, else the
result's ``llm_output``), tool runs ``tool_use`` steps, retriever runs ``retrieval``
steps; chains and graph nodes are aggregates. A failed tool's error is on its step;
the root's error is the trace's. One handler may serve many concurrent invokes
(threads or asyncio tasks): runs are kept apart by their run ids. It runs inline
(``run_inline``), no thread pool; importing this module imports ``langchain-core``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ._adapter import (
    MAX_OPEN_TRACES,
    MAX_SPANS_PER_TRACE,
    AdapterBase,
    Facade,
)
from ._runtree import (
    INPUT_MAX,
    LLM,
    OUTPUT_MAX,
    SUMMARY_MAX,
    TOOL,
    Node,
    RunTree,
    args_preview,
    as_int,
    error_detail,
    number,
    preview,
    text,
)

__all__ = ["InfiniumCallbackHandler"]

#: LangGraph's control-flow exceptions (an interrupt pauses the run, it is not an error).
_CONTROL_FLOW = frozenset(("GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"))


def _is_control_flow(error: BaseException) -> bool:
    return any(klass.__name__ in _CONTROL_FLOW for klass in type(error).__mro__)


def _run_name(serialized: Any, kwargs: Dict[str, Any], default: str) -> str:
    """The run's name: LangChain's ``name`` keyword, else the serialized name / id."""
    name = text(kwargs.get("name"))
    if name is None and isinstance(serialized, dict):
        name = text(serialized.get("name"))
        if name is None:
            ident = serialized.get("id")
            if isinstance(ident, list) and ident:
                name = text(ident[-1])
    return name or default


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


class InfiniumCallbackHandler(Facade, BaseCallbackHandler):  # type: ignore[misc]
    """A LangChain callback handler that sends one Infinium trace per root run.

    ``client`` is an ``InfiniumClient`` or ``AsyncInfiniumClient``; the trace is sent
    when the root run ends (queued with ``background=True``; a blocking send from
    inside a running event loop goes to a send thread, see :meth:`flush`).
    ``trace_name`` overrides the root run's name as the trace name. With
    ``capture_content=True`` prompts, outputs, tool inputs and results are
    previewed (cut to the SDK's caps). A failure in the handler never reaches the
    chain: it is logged and counted (:meth:`stats`).
    """

    _core: _Core

    run_inline = True
    raise_error = False

    def __init__(
        self,
        client: Any,
        *,
        capture_content: bool = False,
        trace_name: Optional[str] = None,
        max_open_traces: int = MAX_OPEN_TRACES,
        max_spans_per_trace: int = MAX_SPANS_PER_TRACE,
    ) -> None:
        super().__init__()
        if trace_name is not None and not isinstance(trace_name, str):
            raise TypeError(f"trace_name must be a str, got {type(trace_name).__name__}")
        self._core = _Core(
            client,
            capture_content=capture_content,
            max_open_traces=max_open_traces,
            max_spans_per_trace=max_spans_per_trace,
            what="LangChain runs",
        )
        self.trace_name = trace_name

    # -- starts --------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: Optional[Dict[str, Any]],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _run_name(serialized, kwargs, "chain")
            _, is_root = self._core.start(run_id, parent_run_id, None, name)
            if is_root:
                self._core.root_started(run_id, self.trace_name, inputs)
        except Exception:
            self._core._callback_failed("on_chain_start")

    def on_chat_model_start(
        self,
        serialized: Optional[Dict[str, Any]],
        messages: Sequence[Sequence[Any]],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        try:
            first = messages[0] if messages else None
            self._model_start(serialized, first, run_id, parent_run_id, metadata, kwargs)
        except Exception:
            self._core._callback_failed("on_chat_model_start")

    def on_llm_start(
        self,
        serialized: Optional[Dict[str, Any]],
        prompts: List[str],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        try:
            first = prompts[0] if prompts else None
            self._model_start(serialized, first, run_id, parent_run_id, metadata, kwargs)
        except Exception:
            self._core._callback_failed("on_llm_start")

    def _model_start(
        self,
        serialized: Any,
        prompt: Any,
        run_id: UUID,
        parent_run_id: Optional[UUID],
        metadata: Any,
        kwargs: Dict[str, Any],
    ) -> None:
        params = kwargs.get("invocation_params")
        model = (
            text(_get(params, "model"))
            or text(_get(params, "model_name"))
            or text(_get(metadata, "ls_model_name"))
        )
        core = self._core
        node, is_root = core.start(run_id, parent_run_id, LLM, _run_name(serialized, kwargs, "llm"))
        if is_root:
            core.root_started(run_id, self.trace_name, prompt)
        if node is None:
            return
        node.model = model
        node.provider = text(_get(metadata, "ls_provider"))
        node.temperature = number(_get(params, "temperature"))
        if node.temperature is None:
            node.temperature = number(_get(metadata, "ls_temperature"))
        if core.capture_content:
            node.input = preview(prompt, INPUT_MAX)

    def on_tool_start(
        self,
        serialized: Optional[Dict[str, Any]],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        inputs: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        try:
            core = self._core
            name = _run_name(serialized, kwargs, "tool")
            node, is_root = core.start(run_id, parent_run_id, TOOL, name)
            if is_root:
                core.root_started(run_id, self.trace_name, inputs or input_str)
            if node is not None and core.capture_content:
                node.input = args_preview(input_str if input_str else inputs, INPUT_MAX)
        except Exception:
            self._core._callback_failed("on_tool_start")

    def on_retriever_start(
        self,
        serialized: Optional[Dict[str, Any]],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        **kwargs: Any,
    ) -> None:
        try:
            core = self._core
            name = _run_name(serialized, kwargs, "retriever")
            node, is_root = core.start(run_id, parent_run_id, "retrieval", name)
            if is_root:
                core.root_started(run_id, self.trace_name, query)
            if node is not None and core.capture_content:
                node.input = preview(query, INPUT_MAX)
        except Exception:
            self._core._callback_failed("on_retriever_start")

    # -- ends ----------------------------------------------------------------

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, outputs, None)
        except Exception:
            self._core._callback_failed("on_chain_end")

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, None, error)
        except Exception:
            self._core._callback_failed("on_chain_error")

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, response, None)
        except Exception:
            self._core._callback_failed("on_llm_end")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, None, error)
        except Exception:
            self._core._callback_failed("on_llm_error")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, output, None)
        except Exception:
            self._core._callback_failed("on_tool_end")

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, None, error)
        except Exception:
            self._core._callback_failed("on_tool_error")

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, documents, None)
        except Exception:
            self._core._callback_failed("on_retriever_end")

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._core.end(run_id, None, error)
        except Exception:
            self._core._callback_failed("on_retriever_error")


def _model_result(node: Node, response: Any, capture: bool) -> None:
    """Model, provider and tokens (and the output preview) from an ``LLMResult``."""
    generation = None
    generations = getattr(response, "generations", None)
    if isinstance(generations, list) and generations and isinstance(generations[0], list):
        generation = generations[0][0] if generations[0] else None
    message = getattr(generation, "message", None)
    usage = getattr(message, "usage_metadata", None)
    meta = getattr(message, "response_metadata", None)
    llm_output = getattr(response, "llm_output", None)
    if isinstance(usage, dict):
        node.prompt_tokens = as_int(usage.get("input_tokens"))
        node.completion_tokens = as_int(usage.get("output_tokens"))
    else:
        token_usage = _get(llm_output, "token_usage") or _get(llm_output, "usage")
        node.prompt_tokens = as_int(_get(token_usage, "prompt_tokens"))
        node.completion_tokens = as_int(_get(token_usage, "completion_tokens"))
    node.model = (
        text(_get(meta, "model_name")) or text(_get(llm_output, "model_name")) or node.model
    )
    node.provider = node.provider or text(_get(meta, "model_provider"))
    node.name = f"{node.provider or 'unknown'}/{node.model or 'unknown'}"
    if capture:
        output = message if message is not None else getattr(generation, "text", None)
        node.output = preview(output, OUTPUT_MAX)


def _key(run_id: Any) -> Hashable:
    """A run id as a dict key: a UUID's int (hashed natively, not by
    ``UUID.__hash__``), anything else as given."""
    return getattr(run_id, "int", run_id)  # type: ignore[no-any-return]


class _Core(AdapterBase):
    """The handler's state: run id -> run tree, under the adapter lock."""

    framework = "langchain"

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._trees: Dict[Hashable, RunTree] = {}

    def _framework_version(self) -> Optional[str]:
        import langchain_core

        return text(getattr(langchain_core, "__version__", None))

    def _forget(self, tree: RunTree) -> None:
        trees = self._trees
        for key in tree.keys:
            if trees.get(key) is tree:
                del trees[key]

    def start(
        self, run_id: UUID, parent_run_id: Optional[UUID], action: Optional[str], name: str
    ) -> Tuple[Optional[Node], bool]:
        """Record a run (None when past the cap) and whether it is a root run."""
        key = _key(run_id)
        parent = _key(parent_run_id) if parent_run_id is not None else None
        with self._lock:
            tree = self._trees.get(parent) if parent is not None else None
            is_root = tree is None
            if tree is None:
                tree = self._new_tree(key, name, f"{name} (LangChain run {run_id})")
                tree.root = key
            self._trees[key] = tree
            tree.keys.append(key)
            return tree.add(key, parent, action, name), is_root

    def root_started(self, run_id: UUID, trace_name: Optional[str], inputs: Any) -> None:
        tree = self._trees.get(_key(run_id))
        if tree is None:
            return
        if trace_name:
            tree.name = trace_name
        if self.capture_content:
            tree.input_summary = preview(inputs, SUMMARY_MAX)

    def end(self, run_id: UUID, output: Any, error: Optional[BaseException]) -> None:
        key = _key(run_id)
        with self._lock:
            tree = self._trees.pop(key, None)
            if tree is None:
                return
            node = tree.nodes.get(key)
            is_root = tree.root == key
            if is_root:
                self._open.pop(key)
                self._forget(tree)
        capture = self.capture_content
        if node is not None:
            node.end_ns = time.time_ns()
            if error is not None and not _is_control_flow(error):
                node.error = error_detail(error)
            elif node.action == LLM and output is not None:
                _model_result(node, output, capture)
            elif capture and node.action is not None and output is not None:
                node.output = preview(output, OUTPUT_MAX)
        if not is_root:
            return
        tree.end_ns = node.end_ns if node is not None else time.time_ns()
        if node is not None and node.error is not None:
            tree.errors.append(node.error)
        if capture and output is not None:
            if node is not None and node.action == LLM:
                tree.output_summary = node.output
            else:
                tree.output_summary = preview(output, SUMMARY_MAX)
        self._finish(tree)
