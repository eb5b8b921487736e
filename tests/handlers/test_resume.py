# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""ResumeFromCheckpoint's optional keys and BestModelSaver's record (the bundle round trip is in tests/bundles)."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events

from lightseg_monai.handlers import BestModelSaver, ResumeFromCheckpoint


def _engine(epochs: int = 3) -> Engine:
    engine = Engine(lambda e, b: None)
    engine.state.max_epochs = epochs
    return engine


def test_optional_keys_absent_from_the_checkpoint_start_afresh(tmp_path, caplog):
    old, new = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    fresh = torch.nn.Linear(2, 2)
    path = tmp_path / "checkpoint_epoch=1.pt"
    trainer = _engine()
    trainer.state.epoch = 1
    torch.save({"model": old.state_dict(), "trainer": trainer.state_dict()}, path)
    extra = fresh.weight.detach().clone()
    engine = _engine()
    with caplog.at_level(logging.WARNING, logger="lightseg_monai.handlers.resume"):
        ResumeFromCheckpoint(str(path), {"model": new, "extra": fresh}, optional=["extra"]).attach(engine)
        engine.run([0], max_epochs=3)
    torch.testing.assert_close(new.weight, old.weight)
    torch.testing.assert_close(fresh.weight, extra)
    assert "['extra']" in caplog.text and str(path) in caplog.text
    # a required key that is missing fails, as MONAI's CheckpointLoader does
    engine = _engine()
    ResumeFromCheckpoint(str(path), {"model": new, "extra": fresh}).attach(engine)
    with pytest.raises(Exception, match="extra"):
        engine.run([0], max_epochs=3)


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint_epoch"):
        ResumeFromCheckpoint(str(tmp_path / "nope.pt"), {})
    with pytest.raises(ValueError, match="optional keys"):
        ResumeFromCheckpoint(None, {"model": torch.nn.Linear(1, 1)}, optional=["loss"])


def _evaluator(score: float) -> Engine:
    evaluator = Engine(lambda e, b: None)

    @evaluator.on(Events.EPOCH_COMPLETED)
    def set_score(engine):
        engine.state.metrics = {"dice": score}

    return evaluator


@pytest.mark.parametrize("restore", [True, False])
def test_best_model_saver_record_round_trip(tmp_path, restore):
    net = torch.nn.Linear(2, 2)
    saver = BestModelSaver(str(tmp_path), {"model": net}, key_metric_name="dice")
    evaluator = _evaluator(0.5)
    saver.attach(evaluator)
    evaluator.run([0], max_epochs=1)
    record = saver.state_dict()
    assert [p for p, _ in record["_saved"]] == [0.5]
    torch.testing.assert_close(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], net.weight)
    # a resumed run's saver, with the record, keeps model.pt against a lower score; without it, replaces it
    before = (tmp_path / "model.pt").read_bytes()
    with torch.no_grad():
        net.weight.add_(1.0)
    resumed = BestModelSaver(str(tmp_path), {"model": net}, key_metric_name="dice")
    if restore:
        resumed.load_state_dict(record)
    evaluator = _evaluator(0.3)
    resumed.attach(evaluator)
    evaluator.run([0], max_epochs=1)
    assert ((tmp_path / "model.pt").read_bytes() == before) is restore
