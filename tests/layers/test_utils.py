# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import torch
import torch.jit._recursive
from monai.networks.blocks import ADN

from lightseg_monai.layers.precision import GroupNorm, keep_half_precision
from lightseg_monai.layers.utils import ActNormADN, conv_norm_act

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
