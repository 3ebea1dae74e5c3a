"""`Secret`: a config value (a password, a DSN) that never reaches a message, log or repr."""

from __future__ import annotations

import hmac
from typing import Any


class Secret:
    """A string that must not be printed: repr/str show '***'; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call it only where the value is handed to a client library."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self  # immutable, and copying must not go through pickling (refused below)

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("Secret values are not pickled")
