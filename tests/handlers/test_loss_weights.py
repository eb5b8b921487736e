# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from monai.losses import DeepSupervisionLoss, DiceCELoss, DiceLoss

from lightseg_monai.handlers import LossWeightScheduleHandler
from lightseg_monai.losses import DynamicLossWeights, PhaseLossWeights
from lightseg_monai.networks import DLKUNet


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread, or OpenMP barriers on the shared CPU cores dominate the run time (up to 100x)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train(schedule, max_epochs: int = 4) -> tuple[list[tuple[int, float, float]], DiceCELoss]:
    """A real SupervisedTrainer run: tiny DLKUNet, 2 synthetic 16x16 items, batch 1; lambdas seen by every iteration."""
    torch.manual_seed(0)
    net = DLKUNet(2, 1, 3, channels=(4, 8))
    data = [{"image": torch.rand(1, 16, 16), "label": torch.randint(0, 3, (1, 16, 16)).float()} for _ in range(2)]
    loader = torch.utils.data.DataLoader(data, batch_size=1)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=loss,
        train_handlers=[LossWeightScheduleHandler(loss, schedule)],
    )
    seen: list[tuple[int, float, float]] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: seen.append((e.state.epoch, loss.lambda_dice, loss.lambda_ce))
    )
    trainer.run()
    return seen, loss


def test_phase_schedule_in_a_supervised_trainer():
    seen, _ = _train("phase")
    # 4 epochs, boundary 0.5 x 4 = 2: epochs 1-2 at (0.6, 0.4), 3-4 at (0.7, 0.3); both iterations of an epoch agree
    assert [s[0] for s in seen] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert all(s[1:] == ((0.6, 0.4) if s[0] <= 2 else (0.7, 0.3)) for s in seen)


def test_dynamic_schedule_in_a_supervised_trainer():
    sched = DynamicLossWeights(k=2.0)
    seen, loss = _train(sched, max_epochs=3)
    for epoch, alpha, beta in seen:
        assert (alpha, beta) == sched(epoch, 3)
    alphas = sorted({s[1] for s in seen}, reverse=True)
    assert len(alphas) == 3 and alphas == [s[1] for s in seen][::2]  # changed at every epoch, Dice weight falling
    assert (loss.lambda_dice, loss.lambda_ce) == sched(3, 3)


def test_selected_by_name_from_a_bundle_config():
    parser = ConfigParser(
        {
            "loss": {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True},
            "handler": {
                "_target_": "lightseg_monai.handlers.LossWeightScheduleHandler",
                "loss": "@loss",
                "schedule": "dynamic",
            },
            "custom": {
                "_target_": "lightseg_monai.handlers.LossWeightScheduleHandler",
                "loss": "@loss",
                "schedule": {"_target_": "lightseg_monai.losses.PhaseLossWeights", "boundary": 0.25},
                "max_epochs": 100,
            },
        }
    )
    handler = parser.get_parsed_content("handler")
    assert handler.loss is parser.get_parsed_content("loss")
    assert isinstance(handler.schedule, DynamicLossWeights)
    custom = parser.get_parsed_content("custom")
    assert isinstance(custom.schedule, PhaseLossWeights) and custom.max_epochs == 100


def test_wrapped_loss_and_explicit_max_epochs():
    inner = DiceCELoss(to_onehot_y=True, softmax=True)
    handler = LossWeightScheduleHandler(DeepSupervisionLoss(inner), "phase", max_epochs=400)
    assert handler.loss is inner

    class _State:
        epoch, max_epochs = 201, 4  # the handler's max_epochs wins over the engine's

    class _Engine:
        state = _State()

    handler(_Engine())
    assert (inner.lambda_dice, inner.lambda_ce) == (0.7, 0.3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="DiceCELoss"):
        LossWeightScheduleHandler(DiceLoss(), "phase")
    with pytest.raises(ValueError, match="ordinary"):
        LossWeightScheduleHandler(DiceCELoss(), "warmup")
    with pytest.raises(ValueError, match="max_epochs"):
        LossWeightScheduleHandler(DiceCELoss(), "phase", max_epochs=0)
