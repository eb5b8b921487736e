"""Print the README's complexity table: parameters, thop-convention MACs and FlopCounterMode FLOPs per network.

Run: python scripts/complexity_table.py   (meta device: no compute, a few seconds)
"""
import torch
from lightseg_monai.networks import LGMSNet, LSUNet, RDIUNet, dlkunet_s, dlkunet_m, dlkunet_l
from lightseg_monai.utils import count_parameters, count_macs, count_flops
rows = [
 ("LGMSNet 2D", lambda: LGMSNet(2,3,1), (1,3,256,256), "3 -> 1, 256^2"),
 ("LGMSNet 3D", lambda: LGMSNet(3,1,14), (1,1,96,96,96), "1 -> 14, 96^3"),
 ("DLKUNet-S", lambda: dlkunet_s(2,1,9), (1,1,224,224), "1 -> 9, 224^2"),
 ("DLKUNet-M", lambda: dlkunet_m(2,1,9), (1,1,224,224), "1 -> 9, 224^2"),
 ("DLKUNet-L", lambda: dlkunet_l(2,1,9), (1,1,224,224), "1 -> 9, 224^2"),
 ("LSU-Net", lambda: LSUNet(2,3,3), (1,3,224,224), "3 -> 3, 224^2"),
 ("RDIU-Net (K=1)", lambda: RDIUNet(2,1,1), (1,1,256,256), "1 -> 1, 256^2"),
 ("RDIU-Net (K=3)", lambda: RDIUNet(2,1,1,kernel_size=3), (1,1,256,256), "1 -> 1, 256^2"),
]
print("| network | config | params | MACs (thop convention) | FLOPs (FlopCounterMode) |")
print("|---|---|---|---|---|")
for name, f, shape, cfg in rows:
    with torch.device("meta"):
        n = f(); x = torch.empty(shape)
    p = count_parameters(n)
    m = count_macs(n, x); fl = count_flops(n, x)
    ex = count_macs(n, x, convention="exact") if "DLK" in name else None
    print(f"| {name} | {cfg} | {p:,} | {m/1e9:.3f} G" + (f" (exact {ex/1e9:.2f} G)" if ex else "") + f" | {fl/1e9:.2f} G |")
