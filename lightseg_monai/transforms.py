# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Transforms and writers the bundles use beside MONAI's own.

- :class:`Spacingd`: MONAI's ``Spacingd`` that tolerates string items named ``<key>_*`` in the data dictionary.
  MONAI Label 0.8.5 adds ``image_path`` (a string); monai 1.6.1's ``Spacingd`` then calls ``.update()`` on every
  ``image_*`` item of a NIfTI input and fails with ``AttributeError: 'str' object has no attribute 'update'``.
- :class:`AtomicNibabelWriter` / :class:`AtomicITKWriter`: MONAI's writers, writing to a temporary file beside the
  target and renaming it into place, so an output file is either complete or absent.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Hashable, Mapping

from monai.data import ITKWriter, NibabelWriter
from monai.data.image_writer import logger as _writer_logger
from monai.transforms import Spacingd as _MonaiSpacingd

__all__ = ["Spacingd", "AtomicNibabelWriter", "AtomicITKWriter", "atomic_path", "select_by_modality"]


class Spacingd(_MonaiSpacingd):
    """``monai.transforms.Spacingd`` that keeps non-dictionary ``<key>_*`` items (e.g. MONAI Label's ``image_path``)
    out of the metadata update it performs on NIfTI inputs, and puts them back unchanged afterwards."""

    def __call__(self, data: Mapping[Hashable, object], lazy: bool | None = None):  # type: ignore[override]
        d = dict(data)
        held = {}
        for key in self.keys:
            for k in list(d):
                if isinstance(k, str) and k.startswith(f"{key}_") and not isinstance(d[k], dict):
                    held[k] = d.pop(k)
        out = super().__call__(d, lazy=lazy)
        out.update(held)
        return out


def _suffix(filename: str) -> str:
    name = os.path.basename(filename)
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm", ".png"):
        if name.lower().endswith(ext):
            return ext
    return os.path.splitext(name)[1]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once, at import: os.umask can only be read by setting it, which is not safe while other threads create files
_FILE_MODE = 0o666 & ~_umask()


class atomic_path:
    """Context manager yielding a temporary path beside ``filename`` (same extension), renamed onto ``filename`` on
    success and deleted on failure. The file gets the permissions a plainly created one would (``0o666`` less the
    process umask), not the owner-only ones of a temporary file."""

    def __init__(self, filename: str):
        self.filename = os.fspath(filename)

    def __enter__(self) -> str:
        d = os.path.dirname(os.path.abspath(self.filename))
        os.makedirs(d, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=d, prefix=".partial-", suffix=_suffix(self.filename))
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.chmod(self.tmp, _FILE_MODE)
            os.replace(self.tmp, self.filename)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)


class AtomicNibabelWriter(NibabelWriter):
    """``monai.data.NibabelWriter`` whose files are complete or absent (write to a temporary name, then rename)."""

    def write(self, filename, verbose: bool = False, **obj_kwargs):
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=False, **obj_kwargs)
        if verbose:  # MONAI's message, with the file's real name
            _writer_logger.info(f"writing: {filename}")


class AtomicITKWriter(ITKWriter):
    """``monai.data.ITKWriter`` whose files are complete or absent (write to a temporary name, then rename)."""

    def write(self, filename, verbose: bool = False, **kwargs):
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=False, **kwargs)
        if verbose:  # MONAI's message, with the file's real name
            _writer_logger.info(f"writing: {filename}")


def select_by_modality(modality: str, ct, mri):
    """Return ``ct`` for modality "CT" and ``mri`` for "MRI" / "MR" (any case); a bundle's ``intensity`` uses it.

    Raises:
        ValueError: for any other modality, naming the accepted values.
    """
    m = str(modality).strip().upper()
    if m == "CT":
        return ct
    if m in ("MR", "MRI"):
        return mri
    raise ValueError(f"modality must be 'CT' or 'MRI' (or 'MR'), got {modality!r}; set --modality accordingly.")
