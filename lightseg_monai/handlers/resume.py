# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Save and resume a bundle's full training state (model, optimizer, scheduler and the trainer engine itself).

A bundle config cannot name ``@train#trainer`` inside the trainer's own handlers (a circular reference), so these
handlers add the engine they are attached to under the key ``"trainer"``.
"""

from __future__ import annotations

import os

import torch
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["ResumeFromCheckpoint", "TrainingStateSaver"]


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


class ResumeFromCheckpoint:
    """Load ``path`` into ``load_dict`` and the trainer engine when ``path`` is set; do nothing when it is None or "".

    MONAI's ``_disabled_`` flag takes only literals, so a bundle cannot switch ``CheckpointLoader`` on from a
    ``resume_ckpt`` variable; this handler takes the variable directly. The file is read by MONAI's
    ``CheckpointLoader`` (``torch.load(weights_only=True)``); training continues from the saved epoch up to the
    configured ``max_epochs``.

    Args:
        path: a checkpoint written by :class:`TrainingStateSaver` (``models/checkpoint_epoch=N.pt``).
        load_dict: objects to restore besides the trainer (model, optimizer, lr_scheduler), keyed as saved.
        map_location: passed to ``torch.load``.
    """

    def __init__(self, path: str | None, load_dict: dict, map_location: str | torch.device | None = "cpu") -> None:
        self.path = path or None
        if self.path is not None and not os.path.isfile(self.path):
            raise FileNotFoundError(f"resume_ckpt {self.path} does not exist; give a models/checkpoint_epoch=N.pt file.")
        self.load_dict = dict(load_dict)
        self.map_location = map_location

    def attach(self, engine) -> None:
        if self.path is not None:
            CheckpointLoader(self.path, dict(self.load_dict, trainer=engine), map_location=self.map_location).attach(engine)
