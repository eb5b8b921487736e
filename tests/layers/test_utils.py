# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.jit._recursive
import torch.nn as nn
from monai.networks.blocks import ADN

from lightseg_monai.layers.precision import GroupNorm, keep_half_precision
from lightseg_monai.layers.utils import ActNormADN, check_deepest_norms, conv_norm_act

from ..norms import randomize_norms


def test_act_first_block_has_its_own_class_and_the_same_state():
    act_first = conv_norm_act(2, 4, 8, norm="batch", act="gelu", ordering="AN")
    norm_first = conv_norm_act(2, 4, 8, norm="batch", act="gelu")
    assert type(act_first.adn) is ActNormADN and list(act_first.adn._modules) == ["A", "N"]
    assert type(norm_first.adn) is ADN and list(norm_first.adn._modules) == ["N", "A"]
    assert list(act_first.state_dict()) == list(norm_first.state_dict())
    # with one of the two layers there is no order to confuse
    assert type(conv_norm_act(2, 4, 8, norm=None, act="gelu", ordering="AN").adn) is ADN
    # keep_half_precision swaps the norm inside and leaves the ADN's class alone
    block = keep_half_precision(conv_norm_act(2, 4, 8, norm=("group", {"num_groups": 2}), act="gelu", ordering="AN"))
    assert type(block.adn) is ActNormADN and type(block.adn.N) is GroupNorm


def test_scripted_blocks_keep_their_order_whatever_was_scripted_first(monkeypatch):
    monkeypatch.setattr(torch.jit._recursive, "concrete_type_store", torch.jit._recursive.ConcreteTypeStore())
    torch.manual_seed(0)
    blocks = [conv_norm_act(2, 4, 4, norm="batch", act="gelu", ordering=o) for o in ("AN", "NA")]
    blocks = [randomize_norms(b).eval() for b in blocks]
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = [b(x) for b in blocks]
        assert not torch.allclose(expected[0], expected[1])
        scripted = [torch.jit.script(b) for b in blocks]  # "AN" first, then "NA" of the same layer types
        for s, e in zip(scripted, expected):
            torch.testing.assert_close(s(x), e)


def test_check_deepest_norms_follows_torchs_conditions():
    x = torch.rand(1, 4, 8, 8)  # one voxel at 1/8
    cases = [
        (nn.InstanceNorm2d(4).eval(), "instance norm"),  # input statistics in any mode
        (nn.InstanceNorm2d(4, track_running_stats=True).eval(), None),  # running statistics in eval mode
        (nn.InstanceNorm2d(4, track_running_stats=True).train(), "instance norm"),
        (nn.BatchNorm2d(4).eval(), None),
        (nn.BatchNorm2d(4).train(), "batch of at least 2"),
        (nn.BatchNorm2d(4, track_running_stats=False).eval(), "batch of at least 2"),  # batch statistics in any mode
        (nn.GroupNorm(2, 4).train(), None),
    ]
    for norm, match in cases:
        deep = torch.zeros(1, 4, 1, 1)
        if match is None:
            check_deepest_norms(x, 8, [norm], "Net")
            norm(deep)  # and torch agrees
        else:
            with pytest.raises(ValueError, match=rf"Net: the input size \[8, 8\] becomes \[1, 1\].*{match}"):
                check_deepest_norms(x, 8, [norm], "Net")
            with pytest.raises(ValueError, match="Expected more than 1"):
                norm(deep)
    check_deepest_norms(torch.rand(1, 4, 16, 8), 8, [nn.InstanceNorm2d(4)], "Net")  # two voxels
    check_deepest_norms(torch.rand(2, 4, 8, 8), 8, [nn.BatchNorm2d(4).train()], "Net")  # two samples
