# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Datalists for the bundles: MSD-style ``dataset.json`` files and inference inputs, checked with clear errors.

A dataset directory holds ``dataset.json`` (Medical Segmentation Decathlon layout) whose ``training`` list has
``{"image": ..., "label": ...}`` items with paths relative to the directory; an image may also be a list of files on one
voxel grid, loaded as its channels (one file per MR sequence, say). A ``validation`` list is used when
present; otherwise a fixed share of ``training`` is held out (deterministically, the last items after sorting).
Images can be NIfTI, NRRD, MHA/MHD or DICOM series folders; MONAI's readers load them.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from monai.data import CacheDataset as _MonaiCacheDataset
from monai.data.folder_layout import FolderLayout
from monai.utils import optional_import

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["IMAGE_EXTENSIONS", "CacheDataset", "MaskFolderLayout", "inference_datalist", "load_datalist", "mask_stem"]

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

    Raises:
        ValueError: two inputs would be written to the same output file: the bundles name a mask after its input,
            without folder or extension (``x.nii.gz`` and ``x.nrrd``, or ``a/x.nii.gz`` and ``b/x.nii.gz``, both give
            ``x_seg``).
    """
    items = _inference_items(source)
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
