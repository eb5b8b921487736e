# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""On/off settings of the bundles, read alike from a config file, from Python and from the command line."""

from __future__ import annotations

__all__ = ["as_flag"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def as_flag(value: object, name: str) -> bool:
    """``value`` of the bundle setting ``name`` as a bool.

    ``python -m monai.bundle run ... --fused_optimizer false`` hands the bundle the string ``'false'`` (Python Fire
    reads only ``False`` as a literal), and a non-empty string is true: used as it is, the setting would stay on.
    The bundles pass their switches (``amp``, ``fused_optimizer``, ``fold_batch_norm``, ``sw_progress``,
    ``reuse_host_memory``) through this function, so ``false`` / ``False`` / ``0`` / ``no`` / ``off`` all turn one off.

    ``None`` (a ``null`` override) is off.

    Raises:
        ValueError: anything else that is not a bool, naming the setting.
    """
    if isinstance(value, bool):
        return value
    if value is None:  # a null override: off, as it used to read
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(
        f"{name} must be true or false (on the command line: --{name} true / --{name} false), got {value!r}."
    )
