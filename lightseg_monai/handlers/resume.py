# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Save and resume a bundle's full training state (model, optimizer, scheduler, the trainer engine itself and the
record of the best validation score so far).

A bundle config cannot name ``@train#trainer`` inside the trainer's own handlers (a circular reference), so these
handlers add the engine they are attached to under the key ``"trainer"``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import torch
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["BestModelSaver", "ResumeFromCheckpoint", "TrainingStateSaver", "trained_model_file"]

logger = logging.getLogger(__name__)


class BestModelSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` keeping the weights of the best key-metric score in ``save_dir/filename``, whose
    record of that score can travel in a training checkpoint.

    MONAI can keep the record only inside the best-model file itself (``key_metric_save_state``), which would make
    ``model.pt`` something other than a plain state_dict. Here :class:`TrainingStateSaver` saves this handler's
    ``state_dict()`` with the rest of the training state and :class:`ResumeFromCheckpoint` restores it, so a resumed
    run replaces ``model.pt`` only with a better score than any before the resume, not with its first validation.

    Args:
        save_dir: folder of the file.
        save_dict: the objects whose state is saved, e.g. ``{"model": network}`` (one object: the file holds its
            plain state_dict).
        filename: the file name. Defaults to ``"model.pt"``.
        kwargs: other ``CheckpointSaver`` arguments (``key_metric_name``, ``key_metric_greater_or_equal``, ...).
    """

    def __init__(self, save_dir: str, save_dict: dict, filename: str = "model.pt", **kwargs) -> None:
        super().__init__(save_dir, save_dict, save_key_metric=True, key_metric_filename=filename, **kwargs)

    def state_dict(self) -> dict:
        """The best scores so far and their files (ignite's ``Checkpoint`` record)."""
        return dict(self._key_metric_checkpoint.state_dict())


class TrainingStateSaver:
    """Save ``save_dict`` plus the trainer engine every ``save_interval`` epochs, keeping the newest ``n_saved`` files
    (``<save_dir>/checkpoint_epoch=N.pt``), for :class:`ResumeFromCheckpoint`. Arguments as MONAI's ``CheckpointSaver``.
    """

    def __init__(self, save_dir: str, save_dict: dict, save_interval: int = 1, n_saved: int = 1, file_prefix: str = ""):
        self.save_dir = save_dir
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.n_saved = n_saved
        self.file_prefix = file_prefix

    def attach(self, engine) -> None:
        save_dict = dict(self.save_dict, trainer=engine)
        CheckpointSaver(
            self.save_dir, save_dict, file_prefix=self.file_prefix, save_interval=self.save_interval,
            n_saved=self.n_saved, epoch_level=True,
        ).attach(engine)


def trained_model_file(ckpt_dir: str, name: str = "model.pt") -> str:
    """The path of a trained model in ``ckpt_dir``, checked to exist before evaluation or inference starts.

    ``configs/evaluate.json`` and ``configs/inference.json`` pass it to MONAI's ``CheckpointLoader``, which would
    otherwise fail only once the evaluator has started, deep inside its run. Training writes ``model.pt`` at its first
    validation (every ``val_interval`` epochs), so a run shorter than ``val_interval`` leaves none.

    Raises:
        FileNotFoundError: naming the missing file and how to get one.
    """
    path = os.path.join(ckpt_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no trained model. Train the bundle first (python -m monai.bundle run --config_file "
            f"configs/train.json ...; it saves {name} at each validation that improves the Dice, so train for at least "
            f"val_interval epochs), copy a trained {name} there, or point --ckpt_dir at the folder that holds one."
        )
    return path


class ResumeFromCheckpoint:
    """Load ``path`` into ``load_dict`` and the trainer engine when ``path`` is set; do nothing when it is None or "".

    MONAI's ``_disabled_`` flag takes only literals, so a bundle cannot switch ``CheckpointLoader`` on from a
    ``resume_ckpt`` variable; this handler takes the variable directly. The file is read by MONAI's
    ``CheckpointLoader`` (``torch.load(weights_only=True)``); training continues from the saved epoch up to the
    configured ``max_epochs``.

    - The checkpoint's model must fit the network (the same keys and shapes, extra deep-supervision heads aside): a
      checkpoint of another bundle or of other settings (``num_classes``, ``in_channels``, ...) is refused when the
      handler is attached, naming the file and the first differences, instead of failing in the run.
    - A cosine learning-rate schedule (``CosineAnnealingLR``) keeps the configured length: its saved state holds the
      ``T_max`` of the first run, so a resume with a larger ``max_epochs`` would restart the cosine from its minimum.
      Here ``T_max`` stays the configured one and each group's learning rate is set to the cosine's value at the
      saved epoch, so the rest of the run follows the schedule of the new length (with the same ``max_epochs``
      nothing changes).

    Args:
        path: a checkpoint written by :class:`TrainingStateSaver` (``models/checkpoint_epoch=N.pt``).
        load_dict: objects to restore besides the trainer (model, optimizer, lr_scheduler), keyed as saved.
        map_location: passed to ``torch.load``.
        optional: keys of ``load_dict`` that a checkpoint may lack (one written by an earlier version of a bundle):
            those objects keep their fresh state, with a warning that names them. Other keys must be present.
    """

    def __init__(
        self,
        path: str | None,
        load_dict: dict,
        map_location: str | torch.device | None = "cpu",
        optional: Sequence[str] = (),
    ) -> None:
        self.path = path or None
        if self.path is not None and not os.path.isfile(self.path):
            raise FileNotFoundError(f"resume_ckpt {self.path} does not exist; give a models/checkpoint_epoch=N.pt file.")
        self.load_dict = dict(load_dict)
        self.map_location = map_location
        self.optional = tuple(optional)
        unknown = [k for k in self.optional if k not in self.load_dict]
        if unknown:
            raise ValueError(f"optional keys {unknown} are not in load_dict {sorted(self.load_dict)}.")

    def attach(self, engine) -> None:
        if self.path is None:
            return
        load_dict = dict(self.load_dict)
        if self.optional:
            # the keys only: memory-mapped, nothing of the tensors is read
            keys = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True).keys()
            missing = [k for k in self.optional if k not in keys]
            for k in missing:
                del load_dict[k]
            if missing:
                logger.warning(f"{self.path} holds no {missing} (written by an earlier version?): those start afresh.")
        self._check_model(load_dict)
        lengths = {k: (o, o.T_max) for k, o in load_dict.items() if isinstance(o, torch.optim.lr_scheduler.CosineAnnealingLR)}
        CheckpointLoader(self.path, dict(load_dict, trainer=engine), map_location=self.map_location).attach(engine)
        if lengths:  # runs after the loader's STARTED handler (ignite calls handlers in the order they were added)
            engine.add_event_handler(Events.STARTED, lambda _: _keep_cosine_lengths(lengths))

    def _check_model(self, load_dict: dict) -> None:
        saved = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        for key, obj in load_dict.items():
            if not isinstance(obj, torch.nn.Module) or not isinstance(saved.get(key), dict):
                continue
            want = {_plain(k): tuple(v.shape) for k, v in obj.state_dict().items()}
            have = {_plain(k): tuple(v.shape) for k, v in saved[key].items() if hasattr(v, "shape")}
            missing = [k for k in want if k not in have]
            unexpected = [k for k in have if k not in want and not k.startswith("ds_heads.")]  # dropped when loading
            shapes = [f"{k} {list(have[k])} vs {list(want[k])}" for k in want if k in have and have[k] != want[k]]
            if missing or unexpected or shapes:
                found = [f"{len(shapes)} of another shape (e.g. {shapes[0]})"] if shapes else []
                found += [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
                found += [f"{len(unexpected)} not in this network (e.g. {unexpected[0]})"] if unexpected else []
                raise ValueError(
                    f"resume_ckpt {self.path}: its {key!r} does not fit this bundle's network ({'; '.join(found)}). "
                    "Resume from a checkpoint of this bundle with the same settings (num_classes, in_channels, "
                    "spatial_dims, network variant), or start a new training."
                )


def _plain(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key  # DistributedDataParallel's prefix


def _keep_cosine_lengths(lengths: dict) -> None:
    for key, (scheduler, t_max) in lengths.items():
        if scheduler.T_max == t_max:
            continue
        logger.info(f"{key}: the checkpoint's cosine schedule ran over {scheduler.T_max} epochs; continuing it over "
                    f"the configured {t_max}")
        scheduler.T_max = t_max
        factor = (1 + math.cos(math.pi * scheduler.last_epoch / t_max)) / 2
        for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * factor
        scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
