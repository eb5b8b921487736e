# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""TorchScript shares one compiled type between modules of one class with the same named submodules; the networks
must not rely on anything that type leaves out (such as the order of the submodules), whatever was scripted before."""

from __future__ import annotations

import pytest
import torch
import torch.jit._recursive

from lightseg_monai.networks import DLKUNet, LGMSNet, LSUNet, RDIUNet

from ..norms import randomize_norms

SIZE = 32


def _networks() -> dict[str, torch.nn.Module]:
    """The four networks, small, 2D, in eval mode with non-trivial norm statistics."""
    torch.manual_seed(0)
    nets = {
        # skip fusion: conv -> GELU -> batch norm (ADN "AN")
        "LGMSNet": LGMSNet(2, 1, 2, channels=(8, 16, 16, 32, 32)),
        # conv -> batch norm -> GELU (ADN "NA"), the same layer types as LGMSNet's fusion in the other order
        "LSUNet": LSUNet(2, 1, 2, channels=(8, 16, 16, 16, 16), deep_supervision=0),
        "DLKUNet": DLKUNet(2, 1, 2, channels=(8, 16)),
        "RDIUNet": RDIUNet(2, 1, 2, channels=(16, 32), growth=16, dense_units=2, bottleneck_channels=32),
    }
    x = torch.randn(2, 1, SIZE, SIZE)
    for net in nets.values():
        randomize_norms(net)
        net.train()
        with torch.no_grad():
            net(x)  # running statistics of this input, not the initial (0, 1)
        net.eval()
    return nets


@pytest.mark.parametrize(
    "order",
    [("LGMSNet", "LSUNet", "DLKUNet", "RDIUNet"), ("RDIUNet", "DLKUNet", "LSUNet", "LGMSNet")],
    ids=["lgmsnet_first", "lgmsnet_last"],
)
def test_scripted_networks_match_eager_whatever_was_scripted_before(order, monkeypatch):
    # a fresh type store: each order starts as a new process would, not from the types other tests have compiled
    monkeypatch.setattr(torch.jit._recursive, "concrete_type_store", torch.jit._recursive.ConcreteTypeStore())
    nets = _networks()
    x = torch.randn(2, 1, SIZE, SIZE)
    with torch.no_grad():
        expected = {name: net(x) for name, net in nets.items()}
    scripted = {name: torch.jit.script(nets[name]) for name in order}  # all in one process, in this order
    with torch.no_grad():
        for name in order:
            torch.testing.assert_close(scripted[name](x), expected[name], rtol=1e-4, atol=1e-5, msg=name)
