"""Print the README's complexity table: parameters, thop-convention MACs and FlopCounterMode FLOPs per network.

Run: python scripts/complexity_table.py   (on the meta device: shapes only, a few seconds)
"""

from __future__ import annotations

import torch

from lightseg_monai.networks import LGMSNet, LSUNet, RDIUNet, dlkunet_l, dlkunet_m, dlkunet_s
from lightseg_monai.utils import count_flops, count_macs, count_parameters

ROWS = [
    ("LGMSNet 2D", lambda: LGMSNet(2, 3, 1), (1, 3, 256, 256), "3 -> 1, 256^2"),
    ("LGMSNet 3D", lambda: LGMSNet(3, 1, 14), (1, 1, 96, 96, 96), "1 -> 14, 96^3"),
    ("DLKUNet-S", lambda: dlkunet_s(2, 1, 9), (1, 1, 224, 224), "1 -> 9, 224^2"),
    ("DLKUNet-M", lambda: dlkunet_m(2, 1, 9), (1, 1, 224, 224), "1 -> 9, 224^2"),
    ("DLKUNet-L", lambda: dlkunet_l(2, 1, 9), (1, 1, 224, 224), "1 -> 9, 224^2"),
    ("LSU-Net", lambda: LSUNet(2, 3, 3), (1, 3, 224, 224), "3 -> 3, 224^2"),
    ("RDIU-Net (K=1)", lambda: RDIUNet(2, 1, 1), (1, 1, 256, 256), "1 -> 1, 256^2"),
    ("RDIU-Net (K=3)", lambda: RDIUNet(2, 1, 1, kernel_size=3), (1, 1, 256, 256), "1 -> 1, 256^2"),
]


def main() -> None:
    print("| network | config | params | MACs (thop convention) | FLOPs (FlopCounterMode) |")
    print("|---|---|---|---|---|")
    for name, make, shape, cfg in ROWS:
        with torch.device("meta"):
            net = make()
            x = torch.empty(shape)
        macs = count_macs(net, x)
        exact = f" (exact {count_macs(net, x, convention='exact') / 1e9:.2f} G)" if name.startswith("DLK") else ""
        flops = count_flops(net, x)
        print(f"| {name} | {cfg} | {count_parameters(net):,} | {macs / 1e9:.3f} G{exact} | {flops / 1e9:.2f} G |")


if __name__ == "__main__":
    main()
