# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from monai.losses import DiceCELoss

from lightseg_monai.losses import AutomaticWeightedLoss, MultiScaleDeepLoss, param_groups
from lightseg_monai.networks import LSUNet


class _Recorder(nn.Module):
    """A per-level loss with known values: the mean of the prediction; records the targets it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[torch.Tensor] = []

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.targets.append(target)
        return input.mean()


def _eq11(losses: list[float], sigmas: list[float]) -> float:
    return sum(l / (2 * s**2) + math.log(1 + s**2) for l, s in zip(losses, sigmas))


def test_automatic_weighted_loss_is_eq_11():
    awl = AutomaticWeightedLoss(3)
    assert awl.sigma.tolist() == [1.0, 1.0, 1.0]  # initialised to 1
    losses = [0.7, 1.9, 0.2]
    torch.testing.assert_close(awl([torch.tensor(v) for v in losses]), torch.tensor(_eq11(losses, [1.0] * 3)))
    with torch.no_grad():
        awl.sigma.copy_(torch.tensor([0.5, 2.0, -1.5]))
    torch.testing.assert_close(awl(torch.tensor(losses)), torch.tensor(_eq11(losses, [0.5, 2.0, -1.5])))
    # fewer losses than sigma: the first ones weight them
    torch.testing.assert_close(awl(torch.tensor(losses[:2])), torch.tensor(_eq11(losses[:2], [0.5, 2.0])))


def test_multi_scale_value_and_nearest_downsampling():
    rec = _Recorder()
    loss_fn = MultiScaleDeepLoss(rec, num_levels=3)
    with torch.no_grad():
        loss_fn.sigma.copy_(torch.tensor([1.0, 0.8, 1.7]))
    preds = [torch.full((2, 3, 16, 16), 0.3), torch.full((2, 3, 8, 8), 1.1), torch.full((2, 3, 4, 4), 2.5)]
    target = torch.randint(0, 3, (2, 1, 16, 16))
    value = loss_fn(preds, target)
    torch.testing.assert_close(value, torch.tensor(_eq11([0.3, 1.1, 2.5], [1.0, 0.8, 1.7])))
    # full-resolution label as is; coarser levels: nearest neighbour, centre-aligned, integer dtype kept
    assert rec.targets[0] is target
    assert rec.targets[1].dtype == target.dtype
    assert torch.equal(rec.targets[1], target[:, :, 1::2, 1::2])
    assert torch.equal(rec.targets[2], target[:, :, 2::4, 2::4])
    rec.targets.clear()
    MultiScaleDeepLoss(rec, num_levels=2, interp_mode="nearest")(preds[:2], target.float())
    assert torch.equal(rec.targets[1], target[:, :, ::2, ::2].float())


def test_single_tensor_is_the_one_level_case():
    loss_fn = MultiScaleDeepLoss()
    pred = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 1, 8, 8)).float()
    plain = DiceCELoss(to_onehot_y=True, softmax=True)(pred, target)
    torch.testing.assert_close(loss_fn(pred, target), plain / 2 + math.log(2))


def test_gradients_reach_the_sigmas():
    loss_fn = MultiScaleDeepLoss(num_levels=3)
    preds = [torch.randn(1, 2, 8 >> i, 8 >> i, requires_grad=True) for i in range(3)]
    loss_fn(preds, torch.randint(0, 2, (1, 1, 8, 8)).float()).backward()
    assert loss_fn.sigma.grad is not None and (loss_fn.sigma.grad != 0).all()
    assert all(p.grad is not None for p in preds)


def test_too_many_levels_raise():
    with pytest.raises(ValueError, match="num_levels"):
        MultiScaleDeepLoss(num_levels=2)([torch.randn(1, 2, 4, 4)] * 3, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="interp_mode"):
        MultiScaleDeepLoss(interp_mode="bilinear")


def test_param_groups_keep_sigma_out_of_weight_decay():
    net = LSUNet(2, 1, 3, channels=(8, 16, 16, 16, 16))
    loss_fn = MultiScaleDeepLoss()
    groups = param_groups(net, loss_fn, 1e-5)
    assert len(groups) == 2
    assert groups[0]["weight_decay"] == 1e-5 and len(groups[0]["params"]) == len(list(net.parameters()))
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["params"] == [loss_fn.sigma]
    opt = torch.optim.AdamW(groups, lr=1e-3)  # AdamW's default decay (0.01) must not reach the sigma
    assert opt.param_groups[1]["weight_decay"] == 0.0
    assert len(param_groups(net, DiceCELoss(), 0.1)) == 1  # a loss without parameters adds no group


def test_param_groups_from_a_bundle_config():
    from monai.bundle import ConfigParser

    config = {
        "imports": ["$import lightseg_monai", "$import lightseg_monai.losses"],
        "network": {
            "_target_": "lightseg_monai.networks.LSUNet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 3,
            "channels": [8, 16, 16, 16, 16],
        },
        "loss": {"_target_": "lightseg_monai.losses.MultiScaleDeepLoss", "num_levels": 6},
        "optimizer": {
            "_target_": "torch.optim.Adam",
            "params": "$lightseg_monai.losses.param_groups(@network, @loss, 1e-5)",
            "lr": 1e-3,
        },
    }
    parser = ConfigParser(config)
    opt = parser.get_parsed_content("optimizer")
    loss_fn = parser.get_parsed_content("loss")
    assert opt.param_groups[1]["params"][0] is loss_fn.sigma and opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[0]["weight_decay"] == 1e-5


def test_training_steps_move_sigma_and_lower_the_loss():
    torch.manual_seed(0)
    net = LSUNet(2, 1, 3, channels=(8, 16, 16, 16, 16)).train()
    loss_fn = MultiScaleDeepLoss()
    opt = torch.optim.Adam(param_groups(net, loss_fn, 1e-5), lr=1e-2)
    x = torch.rand(2, 1, 32, 32)
    y = (x > 0.5).float() + (x > 0.8).float()  # a fixed batch, three classes
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert (loss_fn.sigma.detach() != 1.0).all()


def test_supervised_trainer_calls_it_with_the_list():
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    net = LSUNet(2, 1, 2, channels=(8, 16, 16, 16, 16))
    loss_fn = MultiScaleDeepLoss()
    opt = torch.optim.Adam(param_groups(net, loss_fn, 1e-5), lr=1e-3)
    data = [{"image": torch.rand(2, 1, 32, 32), "label": torch.randint(0, 2, (2, 1, 32, 32)).float()}]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=net,
        optimizer=opt,
        loss_function=loss_fn,
    )
    sigma_before = loss_fn.sigma.detach().clone()
    trainer.run()
    assert isinstance(trainer.state.output[0]["pred"], list) and len(trainer.state.output[0]["pred"]) == 6
    assert not torch.equal(loss_fn.sigma.detach(), sigma_before)
