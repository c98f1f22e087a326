"""SwinV2 window-attention blocks for analysis / synthesis transforms.

The block of Liu et al., "Swin Transformer V2" (CVPR 2022), as S2LIC (Wang et al.) uses it
in a learned image codec: multi-head self-attention inside non-overlapping windows of
``window x window`` tokens, with

* **scaled cosine attention**: ``softmax(cos(q, k) * tau_h + B)``, where ``tau_h`` is a
  learnable per-head temperature (stored as a logarithm, initialised to log 10 and clamped
  at log 100 so the logits stay bounded);
* a **log-spaced continuous relative position bias** ``B``: a small MLP maps the
  log-spaced offset ``sign(d) log2(1 + |d|)`` of every (query, key) pair to one bias per
  head, squashed to ``16 sigmoid(.)``;
* **post-norm residuals**: ``x + LN(attention(x))``, ``x + LN(mlp(x))``;
* **shifted windows**: every second block rolls the map by half a window, and an additive
  mask keeps a token from attending across the boundaries the roll creates.

Feature maps of any size are padded (bottom and right, zeros) to a multiple of the window
inside each block and cropped back; padded positions are masked out as keys, so the output
at a real position does not depend on the padding. An axis no longer than one window is
not shifted (the whole axis already lies in one window). Everything here is float and runs
only inside the transforms: nothing decides a coded symbol's probability.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

# Added to the logits of forbidden (query, key) pairs. Logits are bounded by
# |cos| * 100 + 16, so after softmax's max subtraction exp(MASK_VALUE - max) is exactly 0
# in float32; a finite value (not -inf) keeps a fully masked (padding) query finite.
MASK_VALUE = -1.0e4
# SwinV2's clamp of the attention temperature: tau <= 1 / 0.01.
MAX_LOG_TEMPERATURE = math.log(100.0)


def _padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C), H and W multiples of ``window`` -> (B * nW, window**2, C), windows in
    raster order per image, tokens in raster order per window."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window**2, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def log_spaced_offsets(window: int) -> torch.Tensor:
    """Inputs of the continuous position bias: float32 ((2 window - 1)**2, 2).

    Row ``(dy + window - 1) * (2 window - 1) + (dx + window - 1)`` holds the offset
    (dy, dx) normalised to [-8, 8] and log-spaced as in SwinV2:
    ``sign(d) log2(1 + |d|) / log2(8)``, so the values lie in [-log2(9) / 3, log2(9) / 3]
    (about +-1.06).
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    d = torch.arange(-(window - 1), window, dtype=torch.float32) / (window - 1) * 8.0
    d = torch.sign(d) * torch.log2(1.0 + d.abs()) / math.log2(8.0)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return torch.stack([dy, dx], dim=-1).reshape(-1, 2)


def relative_position_index(window: int) -> torch.Tensor:
    """int64 (window**2, window**2): row of :func:`log_spaced_offsets` for each (query, key)
    pair of tokens of one window (raster order)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), in [0, 2 window - 2]
    return rel[0] * (2 * window - 1) + rel[1]


def shifted_window_mask(height: int, width: int, window: int, shift: tuple[int, int]) -> torch.Tensor | None:
    """Additive attention mask of one block, or None when nothing needs masking.

    The map (``height`` x ``width`` real tokens) is padded to multiples of ``window`` and
    rolled by ``-shift``. Within a window, a key is allowed iff it is a real token (not
    padding) and lies in the same part of the rolled map as the query, where each axis is
    cut into [0, P - window), [P - window, P - shift), [P - shift, P) (P: padded size); the
    last part holds the tokens that wrapped around from the opposite edge.

    Returns:
      float32 (nW, window**2, window**2): 0 for allowed pairs, :data:`MASK_VALUE` for
      forbidden ones, windows in the order of :func:`window_partition`.
    """
    hp, wp = _padded(height, window), _padded(width, window)
    sh, sw = shift
    if (hp, wp) == (height, width) and sh == 0 and sw == 0:
        return None

    def parts(padded: int, s: int) -> torch.Tensor:
        label = torch.zeros(padded, dtype=torch.int64)
        if s:
            label[padded - window:padded - s] = 1
            label[padded - s:] = 2
        return label

    def real(size: int, padded: int, s: int) -> torch.Tensor:
        original = (torch.arange(padded) + s) % padded  # rolled position -> original position
        return original < size

    label = parts(hp, sh)[:, None] * 3 + parts(wp, sw)[None, :]
    valid = real(height, hp, sh)[:, None] & real(width, wp, sw)[None, :]
    label = window_partition(label[None, :, :, None], window)[..., 0]   # (nW, N)
    valid = window_partition(valid[None, :, :, None], window)[..., 0]
    allowed = (label[:, :, None] == label[:, None, :]) & valid[:, None, :]
    return torch.where(allowed, 0.0, MASK_VALUE).to(torch.float32)


class WindowAttentionV2(nn.Module):
    """Scaled cosine multi-head attention inside windows, with the continuous position bias.

    Args:
      dim: channels C of the tokens (a multiple of ``heads``).
      heads: attention heads.
      window: window side; windows hold ``window**2`` tokens.
      cpb_hidden: hidden width of the position-bias MLP.
    """

    def __init__(self, dim: int, heads: int, window: int, cpb_hidden: int = 64):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.dim, self.heads, self.window = dim, heads, window
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        # SwinV2 biases queries and values but not keys (a key bias cancels in the softmax
        # of dot products; with cosine attention it would only distort the angles).
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.log_temperature = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.cpb = nn.Sequential(nn.Linear(2, cpb_hidden), nn.ReLU(), nn.Linear(cpb_hidden, heads, bias=False))
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("offsets", log_spaced_offsets(window), persistent=False)
        self.register_buffer("position_index", relative_position_index(window), persistent=False)

    def position_bias(self) -> torch.Tensor:
        """float32 (heads, N, N), N = window**2, values in (0, 16)."""
        table = self.cpb(self.offsets)                                   # ((2w-1)^2, heads)
        bias = table[self.position_index.reshape(-1)].view(*self.position_index.shape, self.heads)
        return 16.0 * torch.sigmoid(bias.permute(2, 0, 1))

    def weights(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention weights and values.

        Args:
          x: float32 (B * nW, N, C) tokens of the windows.
          mask: float32 (nW, N, N) additive mask (see :func:`shifted_window_mask`) or None.
        Returns:
          (weights float32 (B * nW, heads, N, N), rows summing to 1;
           values float32 (B * nW, heads, N, C / heads)).
        """
        bw, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # the temperature scales the (smaller) normalised queries rather than the logits
        temperature = torch.exp(torch.clamp(self.log_temperature, max=MAX_LOG_TEMPERATURE))
        q = F.normalize(q, dim=-1) * temperature
        k = F.normalize(k, dim=-1)
        additive = self.position_bias()                                   # (heads, N, N)
        if mask is None:
            logits = torch.matmul(q, k.transpose(-2, -1)) + additive
        else:  # position bias and mask summed first, so the large logits see one addition
            nw = mask.shape[0]
            additive = additive[None] + mask[:, None]                      # (nW, heads, N, N)
            logits = torch.matmul(q.view(bw // nw, nw, self.heads, n, -1), k.view(bw // nw, nw, self.heads, n, -1)
                                  .transpose(-2, -1)) + additive
            logits = logits.view(bw, self.heads, n, n)
        return torch.softmax(logits, dim=-1), v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B * nW, N, C) -> (B * nW, N, C); ``mask`` as for :meth:`weights`."""
        weights, v = self.weights(x, mask)
        bw, n, c = x.shape
        return self.proj((weights @ v).transpose(1, 2).reshape(bw, n, c))


class SwinV2Block(nn.Module):
    """One SwinV2 block on channels-last maps: (B, H, W, C) -> (B, H, W, C), any H, W >= 1.

    ``x + LN(W-MSA(x))`` then ``x + LN(MLP(x))`` (post-norm). With ``shifted`` the windows
    are offset by ``window // 2`` along every axis longer than one window.

    Args:
      dim, heads, window, cpb_hidden: as for :class:`WindowAttentionV2`.
      shifted: whether this block uses shifted windows.
      mlp_ratio: hidden width of the MLP in units of ``dim``.
    """

    def __init__(self, dim: int, heads: int, window: int = 8, shifted: bool = False, mlp_ratio: float = 2.0,
                 cpb_hidden: int = 64):
        super().__init__()
        self.window = window
        self.shift = window // 2 if shifted else 0
        self.attn = WindowAttentionV2(dim, heads, window, cpb_hidden)
        self.norm1 = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)

    def shifts(self, height: int, width: int) -> tuple[int, int]:
        """The roll (rows, columns) used for a ``height`` x ``width`` map."""
        return (self.shift if height > self.window else 0, self.shift if width > self.window else 0)

    def mask(self, height: int, width: int) -> torch.Tensor | None:
        """The additive mask this block uses for a ``height`` x ``width`` map (or None)."""
        return shifted_window_mask(height, width, self.window, self.shifts(height, width))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The (shifted) window attention alone: (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, c = x.shape
        hp, wp = _padded(h, self.window), _padded(w, self.window)
        sh, sw = self.shifts(h, w)
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        mask = self.mask(h, w)
        out = self.attn(window_partition(x, self.window), None if mask is None else mask.to(x.device))
        out = window_reverse(out, self.window, hp, wp)
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
        return out[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.norm1(self.attention(x))
        return x + self.norm2(self.mlp(x))


class ResidualSwinStage(nn.Module):
    """Residual group of SwinV2 blocks on conv feature maps: (B, C, H, W) -> (B, C, H, W).

    ``x + conv3x3(blocks(x))``; the blocks alternate regular and shifted windows. The
    3x3 convolution is zero-initialised, so a stage starts as the identity and a codec
    with stages inserted starts as the codec without them.

    Args:
      dim: channels C.
      depth: number of blocks (>= 1).
      heads, window, mlp_ratio, cpb_hidden: as for :class:`SwinV2Block`.
      width: channels the blocks run at (default ``dim``). A narrower width adds a 1x1
        projection ``project`` (C -> width) before the blocks, and ``out`` maps width -> C:
        attention over wide maps (192 DCT channels) then costs a fraction of its full price.
    """

    def __init__(self, dim: int, depth: int, heads: int, window: int = 8, mlp_ratio: float = 2.0,
                 cpb_hidden: int = 64, width: int | None = None):
        super().__init__()
        if depth < 1:
            raise ValueError(f"a stage needs at least one block, got depth {depth}")
        width = dim if width is None else int(width)
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide the stage's width ({width})")
        # Only a narrower stage has the projection (a full-width stage keeps the parameter
        # names of swinv2-hyperprior's weight files).
        self.project = nn.Conv2d(dim, width, 1) if width != dim else None
        self.blocks = nn.ModuleList([SwinV2Block(width, heads, window, shifted=bool(i % 2), mlp_ratio=mlp_ratio,
                                                 cpb_hidden=cpb_hidden) for i in range(depth)])
        self.out = nn.Conv2d(width, dim, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (x if self.project is None else self.project(x)).permute(0, 2, 3, 1)
        for block in self.blocks:
            h = block(h)
        return x + self.out(h.permute(0, 3, 1, 2))
