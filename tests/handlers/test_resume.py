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


def test_a_resume_with_more_epochs_continues_the_cosine_schedule(tmp_path):
    # the scheduler's saved state holds the first run's T_max: resumed to 4 epochs after 2 of 2, the learning rate
    # restarted from the cosine's minimum (1e-06, then 5e-04) instead of 5e-04 then 1.5e-04 as an uninterrupted run
    def setup():
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        return model, opt

    def trainer(opt, sched, lrs, epochs):
        engine = Engine(lambda e, b: opt.step())
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: lrs.append(round(opt.param_groups[0]["lr"], 9)))
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: sched.step())
        engine.state.max_epochs = epochs
        return engine

    model, opt = setup()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=1e-6)
    straight: list[float] = []
    trainer(opt, sched, straight, 4).run([0], max_epochs=4)
    model, opt = setup()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2, eta_min=1e-6)
    first: list[float] = []
    engine = trainer(opt, sched, first, 2)
    engine.run([0], max_epochs=2)
    path = tmp_path / "checkpoint_epoch=2.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
                "trainer": engine.state_dict()}, path)
    model, opt = setup()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=1e-6)  # the new max_epochs
    resumed: list[float] = []
    engine = trainer(opt, sched, resumed, 4)
    ResumeFromCheckpoint(str(path), {"model": model, "optimizer": opt, "lr_scheduler": sched}).attach(engine)
    engine.run([0], max_epochs=4)
    assert first == straight[:1] + [first[1]] and len(resumed) == 2
    assert resumed == pytest.approx(straight[2:], rel=1e-6), (straight, first, resumed)
    assert sched.T_max == 4


def test_a_checkpoint_of_another_network_is_refused_when_attached(tmp_path):
    path = tmp_path / "checkpoint_epoch=1.pt"
    torch.save({"model": torch.nn.Conv2d(16, 2, 1).state_dict(), "trainer": _engine().state_dict()}, path)
    for model, found in ((torch.nn.Conv2d(16, 3, 1), r"2 of another shape \(e\.g\. weight \[2, 16, 1, 1\] vs \[3, 16, 1, 1\]\)"),
                         (torch.nn.Linear(16, 2), r"weight \[2, 16, 1, 1\] vs \[2, 16\]")):
        with pytest.raises(ValueError, match=rf"resume_ckpt .*checkpoint_epoch=1\.pt: its 'model' does not fit .*{found}"):
            ResumeFromCheckpoint(str(path), {"model": model}).attach(_engine())
    seq = torch.nn.Sequential(torch.nn.Conv2d(16, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match=r"4 missing \(e\.g\. 0\.weight\); 2 not in this network \(e\.g\. weight\)"):
        ResumeFromCheckpoint(str(path), {"model": seq}).attach(_engine())
