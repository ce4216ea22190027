"""Swin Transformer tiny (Liu et al., ICCV 2021) as a feature-map backbone.

Parameter names follow timm >= 0.9 (``patch_embed.proj``, ``layers.N.blocks.M.attn.qkv``, patch
merging at the START of stages 1..3 as ``layers.N.downsample.{norm,reduction}``, final ``norm``),
so timm's ``swin_tiny_patch4_window7_224`` files load with ``strict=True`` once the ``head.`` is
dropped. Tokens are kept as ``[B, h, w, C]`` inside (as timm does) and the output is permuted to
NCHW ``[B, C, h, w]`` like every ferkit backbone.

Two registered variants:

- ``swin_t``: patch 4, built for 224x224 input -> 7x7 final map (ImageNet layout).
- ``swin_t_112``: patch 2, built for 112x112 input -> 7x7 final map, the variant whose results the
  Mine-Extra-Knowledge authors released. Its ``patch_embed.proj`` is 2x2, so 224-pretrained
  patch-4 files do not fit that one tensor (the loader reports the shape mismatch).

Neither takes an ``output_stride``: the map size is set by the patch size and the input size
(``img_size / (8 * patch)``: overall stride 32 for ``swin_t``, 16 for ``swin_t_112``), so
``model.output_stride`` accepts only that native stride for them.

The window masks are precomputed for ``img_size``; other sizes work when every stage's token grid
is a multiple of the window (7) or at most the window (then one unshifted window covers the stage,
as in the original code); otherwise the constructor raises naming sizes that work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.errors import ConfigError, UsageError
from ferkit.models.backbones.base import BACKBONES, OnlineWeights


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero the whole residual branch of a sample with probability ``prob``."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * nW, window * window, C]`` (windows in row-major order)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """``[B * nW, window * window, C]`` -> ``[B, H, W, C]`` (undoes :func:`window_partition`)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """``[N, N]`` index into the ``(2w-1)^2`` bias table for each token pair (N = window^2)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)  # [2, N]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # [N, N, 2]
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """``[nW, N, N]`` additive mask (0 / -100) keeping attention inside each pre-shift region."""
    regions = torch.zeros(1, h, w, 1)
    spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for label, (hs, ws) in enumerate((hs, ws) for hs in spans for ws in spans):
        regions[:, hs, ws, :] = label
    region_windows = window_partition(regions, window).squeeze(-1)  # [nW, N]
    diff = region_windows.unsqueeze(1) - region_windows.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window: int, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads))
        # Derived from the window size, so not saved (timm >= 0.9 does the same).
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend within windows.

        Args:
            x: ``[B * nW, N, C]`` tokens of each window.
            mask: ``[nW, N, N]`` additive shift mask, or None.
        """
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B * nW, heads, N, d]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1)  # [heads, N, N]
        if mask is not None:  # split B * nW so the mask broadcasts over the batch
            num_windows = mask.shape[0]
            bias = bias.unsqueeze(0) + mask.unsqueeze(1)  # [nW, heads, N, N]
            q, k, v = (t.view(-1, num_windows, self.num_heads, n, t.shape[-1]) for t in (q, k, v))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.attn_drop if self.training else 0.0)
        out = out.reshape(bw, self.num_heads, n, -1).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    """``fc1`` -> GELU -> ``fc2`` (timm names)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """(Shifted-)window attention and MLP, pre-norm, residual; tokens ``[B, H, W, C]``."""

    def __init__(
        self, dim: int, num_heads: int, resolution: int, window: int, shift: int,
        drop_path_rate: float = 0.0, mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if resolution <= window:  # one window covers the stage: no partition, no shift
            window, shift = resolution, 0
        self.window, self.shift, self.drop_path_rate = window, shift, drop_path_rate
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(resolution, resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape  # [B, H, W, C]
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), self.attn_mask)  # [B * nW, N, C]
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + drop_path(y, self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class PatchMerging(nn.Module):
    """2x2 concat -> LayerNorm -> linear: ``[B, H, W, C]`` -> ``[B, H/2, W/2, 2C]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        # Channel order (0,0), (1,0), (0,1), (1,1) as the original x0..x3 concat.
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Optional patch merging (stages 1..3) followed by ``depth`` blocks, shifting every other."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, resolution: int, window: int,
        downsample: bool, drop_path_rates: list[float],
    ) -> None:
        super().__init__()
        self.downsample = PatchMerging(dim // 2) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            SwinBlock(dim, num_heads, resolution, window, 0 if i % 2 == 0 else window // 2,
                      drop_path_rates[i])
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: ``[B, 3, H, W]`` -> ``[B, H/p, W/p, C]``."""

    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(images).permute(0, 2, 3, 1))


def stage_resolutions(img_size: int, patch_size: int, window: int, num_stages: int) -> list[int]:
    """Token-grid side of each stage; raises ``ValueError`` naming sizes that work."""
    unit = patch_size * 2 ** (num_stages - 1) * window  # sufficient: every grid a multiple of 7
    grid = img_size // patch_size
    sides = [grid // 2**i for i in range(num_stages)]
    fits = img_size % patch_size == 0 and grid % 2 ** (num_stages - 1) == 0 and all(
        side <= window or side % window == 0 for side in sides)
    if not fits:
        below = (img_size // unit) * unit
        hint = f"{below} or {below + unit}" if below else f"{unit}"
        raise ConfigError(
            f"Swin img_size={img_size} with patch_size={patch_size} and window_size={window} "
            f"gives token grids {[img_size / patch_size / 2**i for i in range(num_stages)]}; "
            f"each must be an even split and a multiple of {window} (or at most {window}). "
            f"Use img_size={hint} (any multiple of {unit} works)."
        )
    return sides


class SwinTransformer(nn.Module):
    """Swin Transformer trunk returning the normalized last-stage map ``[B, C, h, w]``.

    Args:
        img_size: input side the window masks are built for (square input).
        patch_size: side of the patch embedding (4 for ImageNet Swin-T, 2 for the 112 variant).
        embed_dim: channels of stage 0 (doubled at each later stage).
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window side.
        drop_path_rate: stochastic depth at the last block (linear from 0).
        in_chans: input channels.
    """

    def __init__(
        self, img_size: int = 224, patch_size: int = 4, embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2), num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7, drop_path_rate: float = 0.1, in_chans: int = 3,
    ) -> None:
        super().__init__()
        sides = stage_resolutions(img_size, patch_size, window_size, len(depths))
        self.img_size = img_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        total = sum(depths)  # plain floats: the model must also build on the meta device
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, start = [], 0
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            stages.append(SwinStage(embed_dim * 2**i, depth, heads, sides[i], window_size,
                                    downsample=i > 0, drop_path_rates=rates[start:start + depth]))
            start += depth
        self.layers = nn.Sequential(*stages)
        self.num_features: int = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.apply(_init_weights)

    @property
    def last_stage(self) -> nn.Module:
        """Stage 3 + final norm as an NCHW -> NCHW module (for BBN); shares the modules."""
        return _NCHWStage(self.layers[-1], self.norm)

    def forward_trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Everything before :attr:`last_stage`: ``[B, 3, H, W]`` -> ``[B, C/2, 2h, 2w]``."""
        x = self.layers[:-1](self.patch_embed(self._check_size(images)))
        return x.permute(0, 3, 1, 2)

    def _check_size(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != (self.img_size, self.img_size):
            raise UsageError(
                f"this Swin backbone was built for {self.img_size}x{self.img_size} input, got "
                f"{images.shape[-2]}x{images.shape[-1]}; create it with "
                f"img_size={images.shape[-1]} (or resize the images)")
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self._check_size(images))  # [B, H/p, W/p, C0]
        x = self.norm(self.layers(x))  # [B, h, w, C]
        return x.permute(0, 3, 1, 2).contiguous()  # [B, C, h, w]


class _NCHWStage(nn.Module):
    """Wraps a token stage and a norm so it maps ``[B, C, H, W]`` to ``[B, C', h, w]``."""

    def __init__(self, stage: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.stage, self.norm = stage, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.stage(x.permute(0, 2, 3, 1)))  # [B, h, w, C']
        return x.permute(0, 3, 1, 2).contiguous()


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@BACKBONES.register("swin_t", native_stride=32, output_strides=(32,), input_size=224,
                    min_input_size=224, num_features=768,
                    imagenet=(OnlineWeights("timm", "swin_tiny_patch4_window7_224.ms_in1k"),))
def swin_t(*, img_size: int = 224, drop_path_rate: float = 0.1, in_chans: int = 3
           ) -> SwinTransformer:
    """Swin-T, patch 4, window 7 (timm ``swin_tiny_patch4_window7_224``); 7x7x768 at 224."""
    return SwinTransformer(img_size=img_size, patch_size=4, drop_path_rate=drop_path_rate,
                           in_chans=in_chans)


@BACKBONES.register("swin_t_112", native_stride=16, output_strides=(16,), input_size=112,
                    min_input_size=112, num_features=768)  # no ImageNet weights for patch 2
def swin_t_112(*, img_size: int = 112, drop_path_rate: float = 0.1, in_chans: int = 3
               ) -> SwinTransformer:
    """Swin-T with patch 2 for 112x112 faces (the MEK authors' variant); 7x7x768 at 112."""
    return SwinTransformer(img_size=img_size, patch_size=2, drop_path_rate=drop_path_rate,
                           in_chans=in_chans)
