# Hand-written stub of the native module `aegis._aegis` (aegis-py/src/lib.rs).
# Private: use the `aegis` package API.
import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, final

__all__ = ["CORE_VERSION", "NativeEngine"]

_Key = Union[bytes, bytearray, str, None]
_Audit = Union[str, os.PathLike[str], Callable[[Dict[str, Any]], Any], None]
_RawDecision = Tuple[
    str,
    List[str],
    str,
    Optional[Tuple[str, List[str]]],
    List[Tuple[str, str, str]],
    Dict[str, Any],
]

CORE_VERSION: str

@final
class NativeEngine:
    @staticmethod
    def from_path(
        path: Union[str, os.PathLike[str]],
        audit: _Audit = None,
        fsync: Optional[str] = None,
        approval_key: _Key = None,
        signing_key: _Key = None,
        signing_key_id: Optional[str] = None,
        collector: Optional[str] = None,
    ) -> NativeEngine: ...
    @staticmethod
    def from_yaml(
        text: str,
        audit: _Audit = None,
        fsync: Optional[str] = None,
        approval_key: _Key = None,
        signing_key: _Key = None,
        signing_key_id: Optional[str] = None,
        collector: Optional[str] = None,
    ) -> NativeEngine: ...
    def close(self) -> None: ...
    def is_closed(self) -> bool: ...
    def evaluate(self, request: Any) -> _RawDecision: ...
    def evaluate_json(self, request_json: str) -> str: ...
    def kill(self, scope_name: str, id: str, reason: Optional[str] = None) -> None: ...
    def revive(self, scope_name: str, id: str) -> bool: ...
    def grant(self, approval_id: str, approver: str, ttl_seconds: int) -> str: ...
    def reload(self) -> None: ...
    def reload_yaml(self, text: str) -> None: ...
    def policy_hash(self) -> str: ...
    def has_collector(self) -> bool: ...
    def collector_metrics(self) -> Optional[str]: ...
    def collector_flush(self, timeout_seconds: float) -> None: ...
    def collector_close(self, timeout_seconds: Optional[float] = None) -> Optional[str]: ...
