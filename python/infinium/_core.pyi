"""Type stubs for the compiled ``infinium._core`` extension (src/)."""

from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union, final

__all__ = [
    "__version__",
    "TASK_FIELDS",
    "SECTIONS",
    "TOP_LEVEL_FIELDS",
    "MAX_NAME_LENGTH",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_STRING_LENGTH",
    "MAX_PAYLOAD_SIZE",
    "MAX_DURATION",
    "MAX_DEPTH",
    "dumps",
    "dumps_value",
    "validate_task_fields",
    "validate_duration",
    "validate_iso_datetime",
    "validate_required_field",
    "validate_string_length",
    "_validate_iso_datetime_as",
    "validate_payload_size",
    "_set_field_reading",
    "_shutdown",
    "iso_now",
    "CoreClient",
    "LocalServer",
    "Exporter",
]

__version__: str
TASK_FIELDS: Tuple[str, ...]
SECTIONS: Tuple[str, ...]
TOP_LEVEL_FIELDS: Tuple[str, ...]
MAX_NAME_LENGTH: int
MAX_DESCRIPTION_LENGTH: int
MAX_STRING_LENGTH: int
MAX_PAYLOAD_SIZE: int
MAX_DURATION: int
MAX_DEPTH: int

def dumps(task_data: Any) -> bytes: ...
def dumps_value(value: Any) -> bytes: ...
def validate_task_fields(
    name: Any, description: Any, duration: Any, current_datetime: Optional[Any]
) -> float: ...
def validate_duration(duration: Any) -> float: ...
def validate_payload_size(payload: Any) -> None: ...
def validate_iso_datetime(datetime_str: Any) -> bool: ...
def validate_required_field(value: Any, field_name: Any) -> None: ...
def validate_string_length(value: Any, field_name: Any, max_length: Any) -> Any: ...
def _validate_iso_datetime_as(datetime_str: Any, minor: int) -> bool: ...
def _set_field_reading(mode: Optional[str] = None) -> None: ...
def _shutdown() -> None: ...
def iso_now() -> str: ...

# The classes are built by their __new__ (PyO3 #[new]) and cannot be subclassed.
# A default the extension does not state (``...``) is the Rust side's.
@final
class CoreClient:
    def __new__(
        cls,
        base_url: str,
        agent_id: str,
        agent_secret: str,
        *,
        timeout: Optional[float] = ...,
        timeout_text: Optional[str] = None,
        max_retries: int = 3,
        requests_per_second: Optional[float] = ...,
        burst: int = 20,
        user_agent: str = ...,
        verify_ssl: bool = True,
        max_retry_after: float = 60.0,
        backoff_base: float = 1.0,
        pool_size: int = 32,
    ) -> CoreClient: ...
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        prompt: Optional[Tuple[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Tuple[int, Any]: ...
    async def request_async(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        prompt: Optional[Tuple[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Tuple[int, Any]: ...
    def send_batch(
        self, path: str, tasks: List[Any], max_concurrent: int = 5, fail_fast: bool = False
    ) -> List[Tuple[bool, Optional[int], Any, str]]: ...
    async def send_batch_async(
        self, path: str, tasks: List[Any], max_concurrent: int = 5, fail_fast: bool = False
    ) -> List[Tuple[bool, Optional[int], Any, str]]: ...

@final
class LocalServer:
    """The local Infinium API (Rust, on the SDK's tokio runtime)."""

    def __new__(
        cls,
        config: Optional[Any] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        names: Optional[Mapping[str, str]] = None,
        origin: Optional[str] = None,
    ) -> LocalServer: ...
    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def base_url(self) -> str: ...
    @property
    def sink(self) -> bool: ...
    def agents(self) -> List[Tuple[str, str]]: ...
    def settings(self) -> Dict[str, Any]: ...
    def stats(self) -> Dict[str, int]: ...
    def traces(self, agent_id: Optional[str] = None) -> List[Dict[str, Any]]: ...
    def records(self, agent_id: Optional[str] = None) -> List[Dict[str, Any]]: ...
    def clear(self) -> None: ...
    def add_agent(self, agent_id: str, key: str) -> None: ...
    def add_prompt(self, prompt: Mapping[str, Any]) -> None: ...
    def set_faults(self, faults: Optional[Mapping[str, Any]] = None) -> None: ...

# --- background export ---
@final
class Exporter:
    def __new__(
        cls,
        core: CoreClient,
        path: str,
        agent: str,
        *,
        max_queue_size: int = 10_000,
        concurrency: int = 8,
        spool_dir: Optional[str] = None,
        spool_default: bool = False,
        durable: bool = False,
        max_spool_bytes: int = ...,
    ) -> Exporter: ...
    def submit(self, task: Any) -> Tuple[str, Optional[List[str]]]: ...
    def take_warnings(self) -> Optional[List[str]]: ...
    def flush(self, timeout: Optional[float] = None) -> bool: ...
    async def flush_async(self, timeout: Optional[float] = None) -> bool: ...
    def close(self, timeout: float) -> bool: ...
    async def close_async(self, timeout: float) -> bool: ...
    def stats(self) -> Dict[str, int]: ...
    @property
    def spool_path(self) -> Optional[Path]: ...
    @property
    def spool_target(self) -> Optional[Path]: ...
    @staticmethod
    def spool_targets(
        root: Union[str, PathLike[str]],
    ) -> List[Tuple[Path, str, str, bool, int]]: ...
    @staticmethod
    def spool_target_dir(root: Union[str, PathLike[str]], agent: str, base_url: str) -> Path: ...
    @staticmethod
    def retarget(
        src: Union[str, PathLike[str]], root: Union[str, PathLike[str]], agent: str, base_url: str
    ) -> int: ...
