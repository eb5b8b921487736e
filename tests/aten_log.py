# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The names of the aten ops a block of code dispatches, in order, for tests that pin which kernels run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.utils._python_dispatch import TorchDispatchMode


class _Log(TorchDispatchMode):
    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def aten_ops() -> Iterator[list[str]]:
    """``with aten_ops() as seen:`` fills ``seen`` with the op names (``"addcmul_"``, ``"slice_backward"``, ...)."""
    seen: list[str] = []
    with _Log(seen):
        yield seen
