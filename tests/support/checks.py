"""Small checks the tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fusionrec.schemas import ErrorCode, EventError


def code_of(fn: Callable[[], Any]) -> ErrorCode:
    """The dead-letter code of the :class:`EventError` ``fn`` raises (failing the test if none)."""
    with pytest.raises(EventError) as info:
        fn()
    return info.value.code
