# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Global multi-scale (GMS) block of LGMSNet: a sparse, MobileViT-style transformer branch beside a conv branch.

Dong et al., "LGMSNet: Thinning a medical image segmentation model via dual-level multiscale fusion", 2025
(shared/papers/002_2c7d8f7885e98d50.txt, Sec. 3.2); the patch scheme follows MobileViT (Mehta and Rastegari,
ICLR 2022): the feature map is cut into ``p x p`` patches and attention runs across patches among the pixels that sit at
the same position inside their patch, so each of the ``prod(p)`` sequences is ``prod(size / p)`` tokens long.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.utils import get_act_layer
from monai.utils import ensure_tuple_rep

from lightseg_monai.layers.utils import check_spatial_dims, conv_norm_act

__all__ = ["patchify", "unpatchify", "PatchAttention", "PatchTransformerLayer", "DepthwiseConvBranch", "GMSBlock"]


def _channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is stored channels-last (NHWC / NDHWC), in which case moving C last is free."""
    if x.ndim == 4:
        return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if x.ndim == 5:
        return x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
    return False


def patchify(x: torch.Tensor, patch_size: list[int]) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B * prod(p), prod(S / p), C)``: one sequence per in-patch position, patches as tokens.

    One copy for either memory format: a channels-last input is viewed as ``(B, *S, C)`` first.
    """
    b, c = x.shape[0], x.shape[1]
    nd = x.ndim - 2
    n_tokens = 1
    n_pos = 1
    split: list[int] = []
    for i in range(nd):
        n_tokens *= x.shape[2 + i] // patch_size[i]
        n_pos *= patch_size[i]
        split += [x.shape[2 + i] // patch_size[i], patch_size[i]]
    if _channels_last(x):
        # (B, n1, p1, n2, p2, ..., C) -> (B, p1, p2, ..., n1, n2, ..., C)
        perm = [0] + [2 + 2 * i for i in range(nd)] + [1 + 2 * i for i in range(nd)] + [2 * nd + 1]
        return x.movedim(1, -1).reshape([b] + split + [c]).permute(perm).reshape(b * n_pos, n_tokens, c)
    # (B, C, n1, p1, n2, p2, ...) -> (B, p1, p2, ..., n1, n2, ..., C)
    perm = [0] + [3 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)] + [1]
    return x.reshape([b, c] + split).permute(perm).reshape(b * n_pos, n_tokens, c)


def unpatchify(
    t: torch.Tensor, batch: int, spatial: list[int], patch_size: list[int], channels_last: bool = False
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B * prod(p), prod(S / p), C)`` -> ``(B, C, *S)``, in one copy.

    With ``channels_last`` the result is returned in channels-last memory format (still shaped ``(B, C, *S)``).
    """
    nd = len(spatial)
    c = t.shape[-1]
    t = t.reshape([batch] + patch_size + [spatial[i] // patch_size[i] for i in range(nd)] + [c])
    if channels_last:
        # (B, p1.., n1.., C) -> (B, n1, p1, n2, p2, ..., C) -> (B, *S, C) -> view as (B, C, *S)
        perm = [0]
        for i in range(nd):
            perm += [1 + nd + i, 1 + i]
        return t.permute(perm + [2 * nd + 1]).reshape([batch] + spatial + [c]).movedim(-1, 1)
    # (B, p1.., n1.., C) -> (B, C, n1, p1, n2, p2, ...)
    perm = [0, 2 * nd + 1]
    for i in range(nd):
        perm += [1 + nd + i, 1 + i]
    return t.permute(perm).reshape([batch, c] + spatial)


class PatchAttention(nn.Module):
    """Pre-norm multi-head self-attention over token sequences (LayerNorm -> qkv -> softmax(QK^T/sqrt(d))V -> proj).

    The attention itself is ``torch.nn.functional.scaled_dot_product_attention``: the same function as the
    explicit softmax formula, but fused (flash / memory-efficient kernels on GPU), so the ``N x N`` score matrix is
    never materialised. This is where the reference implementation spends most of its time and memory.

    Args:
        dim: token width.
        heads: number of heads. Defaults to 4 (reference).
        dim_head: width of each head. Defaults to 8 (reference).
        qkv_bias: bias on the qkv projection. Defaults to False (reference).
        dropout: dropout on the attention weights and the output projection.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 8, qkv_bias: bool = False, dropout: float = 0.0):
        super().__init__()
        if heads < 1 or dim_head < 1:
            raise ValueError(f"heads and dim_head must be positive, got heads={heads}, dim_head={dim_head}.")
        self.heads = heads
        self.dim_head = dim_head
        self.dropout = float(dropout)
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, inner * 3, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        qkv = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        # unbind, not qkv[0], qkv[1], qkv[2]: its backward stacks the three gradients in one kernel, where three
        # selects would each write a zero-filled qkv-sized gradient and sum them
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.proj_drop(self.proj(out))


class PatchTransformerLayer(nn.Module):
    """One pre-norm transformer layer: ``x + attn(x)``, then ``x + ffn(x)`` with ``ffn = LN -> Linear -> SiLU -> Linear``.

    No positional embedding (reference).
    """

    def __init__(
        self,
        dim: int,
        mlp_dim: int,
        heads: int = 4,
        dim_head: int = 8,
        act: str | tuple = "silu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn = PatchAttention(dim, heads, dim_head, qkv_bias=False, dropout=dropout)
        self.ffn = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, mlp_dim),
            get_act_layer(act),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class DepthwiseConvBranch(nn.Module):
    """GMS conv branch: ``x + norm(dw1x1(act(norm(dw3x3(x)))))`` (depthwise, no bias)."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 3, norm: str | tuple = "batch"):
        super().__init__()
        self.dw = conv_norm_act(spatial_dims, channels, channels, kernel_size, norm=norm, act="relu", groups=channels)
        self.pw = conv_norm_act(spatial_dims, channels, channels, 1, norm=norm, act=None, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x)) + x


class GMSBlock(nn.Module):
    """The GMS block (LGMSNet, Sec. 3.2, Fig. 3), for 2D and 3D.

    ``f = conv1x1(conv3x3(x))``; its channels split ``transformer_ratio`` : ``1 - transformer_ratio`` into a
    patch-transformer branch and a depthwise conv branch; the two are concatenated, fused by a 1x1 conv, concatenated
    with ``x`` and fused by a 3x3 conv. Every conv is conv (no bias) -> ``norm`` -> SiLU.

    Input-size contract: every spatial size must divide by ``patch_size``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (the block's width).
        transformer_ratio: share of ``out_channels`` that goes to the transformer branch. Defaults to 0.75
            (reference: 96 of 128 and 48 of 64).
        patch_size: patch edge (int or per dim). Defaults to 2 (reference, 2x2 in 2D and 2x2x2 in 3D).
        depth: transformer layers. Defaults to 1 (reference).
        heads: attention heads. Defaults to 4 (reference).
        dim_head: width of each head. Defaults to 8 (reference).
        mlp_dim: FFN hidden width. Defaults to ``2 * out_channels`` (reference).
        kernel_size: kernel of the local and the final fusion convolutions. Defaults to 3.
        norm: norm of the convolutions. Defaults to batch norm (2D reference); the 3D reference uses instance norm.
        branch_norm: norm of the depthwise conv branch. Defaults to batch norm (both references).
        dropout: transformer dropout. Defaults to 0.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        transformer_ratio: float = 0.75,
        patch_size: Sequence[int] | int = 2,
        depth: int = 1,
        heads: int = 4,
        dim_head: int = 8,
        mlp_dim: int | None = None,
        kernel_size: int = 3,
        norm: str | tuple = "batch",
        branch_norm: str | tuple = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.t_channels = int(round(out_channels * transformer_ratio))
        self.c_channels = out_channels - self.t_channels
        if self.t_channels < 1 or self.c_channels < 1:
            raise ValueError(
                f"transformer_ratio={transformer_ratio} leaves an empty branch for out_channels={out_channels}; "
                "choose a ratio strictly between 0 and 1 that splits the channels."
            )
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}.")
        self.patch_size = [int(p) for p in ensure_tuple_rep(patch_size, spatial_dims)]
        mlp_dim = 2 * out_channels if mlp_dim is None else int(mlp_dim)
        self.local = nn.Sequential(
            conv_norm_act(spatial_dims, in_channels, out_channels, kernel_size, norm=norm, act="silu"),
            conv_norm_act(spatial_dims, out_channels, out_channels, 1, norm=norm, act="silu"),
        )
        self.conv_branch = DepthwiseConvBranch(spatial_dims, self.c_channels, 3, norm=branch_norm)
        self.transformer = nn.Sequential(
            *[PatchTransformerLayer(self.t_channels, mlp_dim, heads, dim_head, "silu", dropout) for _ in range(depth)]
        )
        self.fuse = conv_norm_act(spatial_dims, out_channels, out_channels, 1, norm=norm, act="silu")
        self.out = conv_norm_act(spatial_dims, in_channels + out_channels, out_channels, kernel_size, norm=norm, act="silu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.local(x)
        t, c = torch.split(f, [self.t_channels, self.c_channels], dim=1)
        spatial = [int(s) for s in t.shape[2:]]
        if not torch.jit.is_scripting():
            for s, p in zip(spatial, self.patch_size):
                if s % p != 0:
                    raise ValueError(f"GMSBlock: spatial size {spatial} must divide by patch_size {self.patch_size}.")
        tokens = self.transformer(patchify(t, self.patch_size))
        t = unpatchify(tokens, t.shape[0], spatial, self.patch_size, _channels_last(x))
        f = self.fuse(torch.cat([t, self.conv_branch(c)], dim=1))
        return self.out(torch.cat([f, x], dim=1))
