# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Transforms and writers the bundles use beside MONAI's own.

- :class:`Spacingd`: MONAI's ``Spacingd`` that tolerates string items named ``<key>_*`` in the data dictionary.
  MONAI Label 0.8.5 adds ``image_path`` (a string); monai 1.6.1's ``Spacingd`` then calls ``.update()`` on every
  ``image_*`` item of a NIfTI input and fails with ``AttributeError: 'str' object has no attribute 'update'``.
- :class:`LoadImaged`: MONAI's ``LoadImaged`` whose read errors name the file (a truncated NIfTI otherwise fails
  with nibabel's "Expected N bytes, got M bytes from  - could the file be damaged?", no file named), and which checks
  a DICOM series folder before reading it (:func:`~lightseg_monai.data.check_dicom_series`: ITK would skip a
  truncated slice file, or a missing one, and stretch the slice spacing over the gap).
- :class:`CheckImageLabeld`: checks each loaded image/label pair (same voxel grid, label values that are class
  indices) and raises a ValueError naming both files, where MONAI's pipeline would crop or pad a mismatched label
  onto the image silently, or fail later on an out-of-range class index without naming the case.
- :class:`OriginalLabeld`: puts back the label as stored in its file, so that evaluation compares the prediction
  inverted to the image's original grid with the label itself, not with a copy resampled to the training spacing
  and back.
- :class:`AtomicNibabelWriter` / :class:`AtomicITKWriter`: MONAI's writers, writing to a temporary file beside the
  target and renaming it into place, so an output file is either complete or absent.
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from collections.abc import Hashable, Mapping

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ITKWriter, NibabelWriter
from monai.data import NibabelReader as _MonaiNibabelReader
from monai.data.utils import affine_to_spacing
from monai.data.image_writer import logger as _writer_logger
from monai.transforms import LoadImaged as _MonaiLoadImaged
from monai.transforms import MapTransform
from monai.transforms import SaveImaged as _MonaiSaveImaged
from monai.transforms import Spacingd as _MonaiSpacingd
from monai.utils import ensure_tuple

from lightseg_monai.data import MaskFolderLayout, check_dicom_series

__all__ = [
    "Spacingd",
    "LoadImaged",
    "NibabelReader",
    "CheckImageLabeld",
    "OriginalLabeld",
    "AtomicNibabelWriter",
    "AtomicITKWriter",
    "OUTPUT_EXTENSIONS",
    "atomic_path",
    "writer_for",
    "SaveImaged",
    "window_size",
    "select_by_modality",
]

logger = logging.getLogger(__name__)


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


class _NamingLoader:
    """Calls a ``LoadImage`` and re-raises what it raises as a ValueError that names the file (the original chained).

    A DICOM series folder (alone, or one of a case's channel files) is checked first by :func:`check_dicom_series`,
    whose ValueError (naming the folder and its damaged or missing slice files) is raised as it is.
    """

    def __init__(self, loader) -> None:
        self._inner = loader

    def __getattr__(self, name: str):  # only for names not found on this object
        if name == "_inner":  # not set yet (copy, pickle)
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value) -> None:  # e.g. MONAI Label sets ``_loader.image_only``
        if name == "_inner":
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def __call__(self, filename, reader=None):
        for name in ensure_tuple(filename):
            if isinstance(name, (str, os.PathLike)) and os.path.isdir(name):
                check_dicom_series(os.fspath(name))
        try:
            return self._inner(filename, reader)
        except Exception as e:
            raise ValueError(
                f"{filename}: cannot be read as an image ({type(e).__name__}: {e}). Check that the file is complete "
                "(not truncated by an interrupted copy or download) and in a supported format (NIfTI, NRRD, MHA/MHD, "
                "a DICOM series folder)."
            ) from e


class NibabelReader(_MonaiNibabelReader):
    """``monai.data.NibabelReader`` (same arguments) that keeps the sform of a NIfTI file without a qform.

    MONAI's reader "corrects" a header whose ``pixdim`` disagrees with the affine, and for a file with an sform
    (``sform_code > 0``) and no qform (``qform_code == 0``) whose ``pixdim`` was left at its default (nibabel's
    ``set_sform`` does not update it) it replaces the sform by the unset qform: an oblique 0.8 x 0.9 x 2.5 mm volume
    is read with an identity affine, and its mask is written so, without a warning. The NIfTI standard reads such a
    file by its sform, as nibabel and ITK do; here the sform (and the matching ``pixdim``) is put back.
    """

    def read(self, data, **kwargs):
        images = super().read(data, **kwargs)
        for img in images if isinstance(images, list) else [images]:
            _restore_sform_only_affine(img)
        return images


def _restore_sform_only_affine(img) -> None:
    filename = img.get_filename()
    # MONAI's correction keeps both codes, so the header read already tells the rare case that needs the file's own
    if filename is None or int(img.header["sform_code"]) <= 0 or int(img.header["qform_code"]) != 0:
        return
    header = nib.load(filename).header  # the file's own header (lazy: the data is not read)
    if int(header["sform_code"]) <= 0 or int(header["qform_code"]) != 0:
        return
    sform = header.get_sform()
    if np.allclose(img.affine, sform):
        return
    img.set_sform(sform, code=int(header["sform_code"]))
    zooms = list(img.header.get_zooms())
    n = min(len(zooms), 3)
    zooms[:n] = affine_to_spacing(sform, r=n).tolist()
    img.header.set_zooms(zooms)
    logger.debug(f"{filename}: kept the sform (no qform; pixdim {tuple(header.get_zooms())} left unset)")


class LoadImaged(_MonaiLoadImaged):
    """``monai.transforms.LoadImaged`` (same arguments) whose read errors name the file.

    MONAI's readers name the file when no reader accepts it, but not when the chosen reader then fails on the data
    (a truncated NIfTI: nibabel's "Expected N bytes, got M bytes from  - could the file be damaged?"); MONAI's
    ``apply_transform`` then adds only the transform's name. This one raises a ValueError naming the file, with the
    reader's error chained. A DICOM series folder is checked before it is read (:func:`check_dicom_series`): ITK
    would skip a truncated slice file and stretch the slice spacing over the gap it leaves (or over a missing file's)
    without an error. MONAI Label treats it as a ``LoadImaged`` (a subclass).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loader = _NamingLoader(self._loader)
        bound = inspect.signature(_MonaiLoadImaged.__init__).bind(self, *args, **kwargs).arguments
        if bound.get("reader") is None:
            # the last registered reader is tried first; with the reader options MONAI gives its default readers
            try:
                reader = NibabelReader(*bound.get("args", ()), **bound.get("kwargs", {}))
            except TypeError:  # options for another reader only (MONAI's fallback too)
                reader = NibabelReader()
            self.register(reader)

    def register(self, reader) -> None:
        self._loader._inner.register(reader)


def _source(x) -> str:
    meta = getattr(x, "meta", None) or {}
    return str(meta.get("filename_or_obj", "<array without a file name>"))


def _grid(affine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spacing, direction cosines (columns) and origin of an affine (any spatial rank)."""
    a = affine.detach().to(torch.float64).cpu()
    rot, origin = a[:-1, :-1], a[:-1, -1]
    spacing = torch.linalg.vector_norm(rot, dim=0)
    return spacing, rot / spacing.clamp_min(1e-12), origin


class CheckImageLabeld(MapTransform):
    """Check each loaded image/label pair before any spatial transform; raise a ValueError naming both files.

    Put it right after ``LoadImaged(..., ensure_channel_first=True)``. The image alone (also at inference, with the
    image key only):

    - it is a volume: ``spatial_rank`` spatial axes (3: the 2D bundles segment volumes slice by slice, so a 2D image
      goes in as a single-slice volume ``(X, Y, 1)``);
    - with ``in_channels``, it has that many channels (a 4D NIfTI's last axis, or an RGB file's colours, are
      channels), where the network's first convolution would fail with a shape error that names no file.

    Each image/label pair:

    - the label lies on the image's voxel grid: the same spatial shape, spacing (relative tolerance ``rtol``) and
      direction (``atol`` on the cosines). The transforms after it pair image and label voxel by voxel and resample
      each by its own affine, so a label of another shape would be cropped or padded onto the image (MONAI's
      ``CropForegroundd`` does so silently) and one of another spacing or orientation resampled out of register. A
      different origin alone is only logged as a warning: it moves neither volume against the other here.
    - with ``num_classes``, every label value is a class index ``0..num_classes-1`` (otherwise the loss fails later
      with an index error that names no case).

    Args:
        keys: the image key, then the label key(s), e.g. a bundle's ``@keys``; with a single key only the image is
            checked (inference).
        num_classes: number of classes including background, or None to skip the value check.
        in_channels: number of image channels the network takes, or None to skip the check.
        spatial_rank: number of spatial axes the image must have, or None to skip the check. Defaults to 3.
        rtol: relative tolerance on the spacing. Defaults to 1e-3.
        atol: absolute tolerance on the direction cosines (and the origin, in mm). Defaults to 1e-3.
        allow_missing_keys: as in MONAI's ``MapTransform``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_classes: int | None = None,
        rtol: float = 1e-3,
        atol: float = 1e-3,
        allow_missing_keys: bool = False,
        in_channels: int | None = None,
        spatial_rank: int | None = 3,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be positive (background included) or None, got {num_classes}.")
        if in_channels is not None and in_channels < 1:
            raise ValueError(f"in_channels must be positive or None, got {in_channels}.")
        if spatial_rank is not None and spatial_rank < 1:
            raise ValueError(f"spatial_rank must be positive or None, got {spatial_rank}.")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.spatial_rank = spatial_rank
        self.rtol = rtol
        self.atol = atol

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        image = d[keys[0]]
        self._check_image(image)
        for key in keys[1:]:
            self._check(image, d[key])
        return d

    def _check_image(self, image: torch.Tensor) -> None:
        shape = tuple(image.shape)
        if self.spatial_rank is not None and len(shape) - 1 != self.spatial_rank:
            what = "a 2D image" if len(shape) == 3 else f"{len(shape) - 1} spatial axes"
            raise ValueError(
                f"{_source(image)}: {what} (channels first: {shape}), where the bundles take volumes with "
                f"{self.spatial_rank} spatial axes and the channels in a 4th axis. Save a 2D image as a single-slice "
                "volume (X, Y, 1) with a 3D affine (nibabel or SimpleITK); the 2D bundles (configs/2d.json) segment "
                "volumes slice by slice."
            )
        if self.in_channels is not None and shape[0] != self.in_channels:
            raise ValueError(
                f"{_source(image)}: {shape[0]} image channel(s) (channels first: {shape}), but the network takes "
                f"in_channels={self.in_channels}. Set --in_channels {shape[0]} (and train with it: a model.pt trained "
                "with another value does not load), or give each case all its channels: one 4D file, or a list of "
                "files, one per channel (dataset.json \"image\": [...], its \"test\" list or --input '[[\"t1\", \"t2\"]]' "
                "at inference)."
            )

    def _check(self, image: torch.Tensor, label: torch.Tensor) -> None:
        where = f"{_source(label)} (label of {_source(image)})"
        problems = []
        if tuple(image.shape[1:]) != tuple(label.shape[1:]):
            problems.append(f"spatial shape {tuple(label.shape[1:])} vs the image's {tuple(image.shape[1:])}")
        a_img, a_lab = getattr(image, "affine", None), getattr(label, "affine", None)
        if a_img is not None and a_lab is not None and not problems:
            (s_img, d_img, o_img), (s_lab, d_lab, o_lab) = _grid(a_img), _grid(a_lab)
            if not torch.allclose(s_lab, s_img, rtol=self.rtol, atol=0):
                problems.append(f"spacing {s_lab.tolist()} vs the image's {s_img.tolist()}")
            if not torch.allclose(d_lab, d_img, rtol=0, atol=self.atol):
                problems.append(f"direction {d_lab.flatten().tolist()} vs the image's {d_img.flatten().tolist()}")
            if not problems and not torch.allclose(o_lab, o_img, rtol=0, atol=self.atol):
                logger.warning(f"{where}: origin {o_lab.tolist()} differs from the image's {o_img.tolist()}; image and "
                               "label are paired voxel by voxel, so the label is used as it lies on the image's grid.")
        if problems:
            raise ValueError(
                f"{where}: the label is not on the image's voxel grid ({'; '.join(problems)}). A label must be drawn "
                "on its image's grid: resample it onto the image (e.g. SimpleITK.Resample with the image as reference "
                "and nearest-neighbour interpolation) or pair it with the right image in dataset.json."
            )
        if self.num_classes is not None:
            values = torch.as_tensor(label).detach()
            lo, hi = values.min().item(), values.max().item()
            if lo < 0 or hi > self.num_classes - 1 or not torch.equal(values, values.round()):
                found = torch.unique(values)
                shown = ", ".join(f"{v:g}" for v in found[:10].tolist()) + (", ..." if found.numel() > 10 else "")
                fix = "remap the label's values to class indices"
                if lo >= 0 and torch.equal(values, values.round()):
                    fix = (f"set --num_classes {int(hi) + 1} if every value up to {int(hi)} is a class (num_classes "
                           f"counts background), or {fix}")
                if found.numel() == 2 and lo == 0 and hi == 255:
                    fix = "map 255 to 1 (a 0/255 mask is one foreground class)"
                raise ValueError(
                    f"{where}: label values must be class indices 0..{self.num_classes - 1} (num_classes="
                    f"{self.num_classes}), found {shown}: {fix}."
                )


class OriginalLabeld(MapTransform):
    """Replace each key's preprocessed tensor by the file it was loaded from, on the grid of ``like``.

    For metrics in the original geometry: the evaluation inverts the prediction to its image's original grid
    (``monai.transforms.Invertd``) and then compares it with the label as stored. Inverting the label as well (as many
    MONAI evaluate configs do) compares with a label resampled to the training spacing and back with
    nearest-neighbour interpolation, which moves boundary voxels and removes thin structures: on an anisotropic
    volume the Dice score can change by a few hundredths.

    Each label is read again (``meta["filename_or_obj"]``) as ``LoadImaged(ensure_channel_first=True)`` reads it and
    must have the spatial shape of ``like`` (the inverted prediction); :class:`CheckImageLabeld` has checked its grid
    against the image's when the pair was loaded. It keeps its file's affine, so distances in mm (HD95) use the
    label's own spacing.

    Args:
        keys: the label key(s).
        like: the key of the tensor on the original image grid (the inverted prediction). Defaults to "pred".
        allow_missing_keys: as in MONAI's ``MapTransform``.

    Raises:
        ValueError: a label without a source file (an array given directly), or one whose spatial shape is not
            that of ``like``, naming the file and both shapes.
    """

    def __init__(self, keys: KeysCollection, like: str = "pred", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.like = like
        self._load = LoadImaged("label", ensure_channel_first=True, image_only=True)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        ref = d[self.like]
        for key in self.key_iterator(d):
            source = (getattr(d[key], "meta", None) or {}).get("filename_or_obj")
            if not source:
                raise ValueError(
                    f"{key!r} has no source file to compare with in the original geometry (it was given as an array); "
                    "evaluate from a dataset.json whose labels are files."
                )
            label = self._load({"label": source})["label"]
            if tuple(label.shape[1:]) != tuple(ref.shape[1:]):
                raise ValueError(
                    f"{source}: the label's spatial shape {tuple(label.shape[1:])} differs from the prediction "
                    f"inverted to its image's grid, {tuple(ref.shape[1:])}; the label must lie on its image's grid."
                )
            d[key] = label.to(device=ref.device)
        return d


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


class _KeepSpatialAxes:
    """Writer mixin: squeeze only a single channel, never a spatial axis of size 1.

    MONAI's writers, with ``squeeze_end_dims=True``, remove every trailing axis of size 1 once the channel is moved
    last: a single-slice volume ``(X, Y, 1)`` is written as a 2D image, and loses its slice position and thickness.
    """

    @classmethod
    def convert_to_channel_last(cls, data, channel_dim=0, squeeze_end_dims=True, spatial_ndim=3, contiguous=False):
        data = super().convert_to_channel_last(  # type: ignore[misc]
            data, channel_dim=channel_dim, squeeze_end_dims=False, spatial_ndim=spatial_ndim, contiguous=contiguous
        )
        if squeeze_end_dims and data.shape[-1] == 1:  # the channel axis, now last
            data = data[..., 0]
        return data


class AtomicNibabelWriter(_KeepSpatialAxes, NibabelWriter):
    """``monai.data.NibabelWriter`` whose files are complete or absent (write to a temporary name, then rename).

    A single-channel mask keeps every spatial axis, size-1 ones included (see ``squeeze_end_dims`` in MONAI).
    """

    def write(self, filename, verbose: bool = False, **obj_kwargs):
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=False, **obj_kwargs)
        if verbose:  # MONAI's message, with the file's real name
            _writer_logger.info(f"writing: {filename}")


class AtomicITKWriter(_KeepSpatialAxes, ITKWriter):
    """``monai.data.ITKWriter`` whose files are complete or absent (write to a temporary name, then rename).

    A single-channel mask keeps every spatial axis, size-1 ones included (see ``squeeze_end_dims`` in MONAI).
    """

    def write(self, filename, verbose: bool = False, **kwargs):
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=False, **kwargs)
        if verbose:  # MONAI's message, with the file's real name
            _writer_logger.info(f"writing: {filename}")


def window_size(size, spatial_dims: int, name: str = "roi_size", volume: bool = False) -> list[int]:
    """A bundle's ``patch_size`` / ``roi_size``, checked against ``spatial_dims`` before any data is read.

    Args:
        size: one size per spatial dim of the network, or one int for all of them. As in MONAI's croppers and
            inferers, a value below 1 means the input's whole size along that axis.
        spatial_dims: the network's spatial dims (2: the bundle trains on slices of the volumes, configs/2d.json).
        name: the config id, for the message.
        volume: return the size of the training crop from the volume: ``size`` in 3D, ``size + [1]`` (one slice) in 2D.

    Raises:
        ValueError: ``size`` is a sequence without ``spatial_dims`` values (e.g. a 3D patch with configs/2d.json,
            which MONAI's transforms would report as a sequence-length mismatch naming neither the id nor the config).
    """
    if isinstance(size, (list, tuple)):
        values = [int(v) for v in size]
    else:
        values = [int(size)] * spatial_dims
    if len(values) != spatial_dims:
        hint = (f", or use configs/{len(values)}d.json for a {len(values)}D network"
                if len(values) in (2, 3) else "")
        raise ValueError(
            f"{name} {values} must have {spatial_dims} values for spatial_dims={spatial_dims}: set --{name} to "
            f"{spatial_dims} values (or one number for all){hint}."
        )
    return values + [1] if volume and spatial_dims == 2 else values


class SaveImaged(_MonaiSaveImaged):
    """``monai.transforms.SaveImaged`` that names each mask after :func:`lightseg_monai.data.mask_stem` of its input.

    The same arguments as MONAI's (``output_dir``, ``output_postfix``, ``output_ext``, ``separate_folder``,
    ``data_root_dir`` keep their meaning); without a ``folder_layout`` of its own it uses a
    :class:`lightseg_monai.data.MaskFolderLayout` built from them, so ``A.NII.GZ`` gives ``A_seg`` (MONAI: ``A.NII_seg``).

    Raises:
        ValueError: when built, if ``output_dir`` or a folder above it exists as a file (MONAI would fail only when
            the first mask is written, after that case's inference).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        bound = inspect.signature(_MonaiSaveImaged.__init__).bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        _check_output_dir(a["output_dir"])
        if a["folder_layout"] is None:
            self.saver.folder_layout = MaskFolderLayout(
                output_dir=a["output_dir"],
                postfix=a["output_postfix"],
                extension=self.saver.output_ext,
                parent=a["separate_folder"],
                makedirs=True,
                data_root_dir=a["data_root_dir"],
            )


def _check_output_dir(output_dir) -> None:
    path = os.path.abspath(os.fspath(output_dir))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        raise ValueError(
            f"output_dir {os.fspath(output_dir)!r} cannot be a folder: {path} is a file. Set --output_dir to a folder "
            "(it is created if missing)."
        )


OUTPUT_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")


def writer_for(output_ext: str):
    """The bundles' mask writer for ``output_ext`` (with or without the dot, any case), checked before any inference.

    Raises:
        ValueError: for any other extension (``.mhd`` writes a second data file beside the header, which a
            temporary name would break; 2D formats such as ``.png`` would drop the slice axis), naming the
            supported ones.
    """
    ext = str(output_ext).strip().lower()
    ext = ext if ext.startswith(".") else f".{ext}"
    if ext not in OUTPUT_EXTENSIONS:
        raise ValueError(
            f"output_ext {output_ext!r} is not supported for masks; use one of {', '.join(OUTPUT_EXTENSIONS)} "
            "(e.g. --output_ext .nrrd)."
        )
    return AtomicNibabelWriter if ext.startswith(".nii") else AtomicITKWriter


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
