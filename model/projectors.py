"""Trainable projectors from encoder frames to LLM-width embeddings: window-level Q-Former (the paper's), MLP, linear.

    proj = build_projector(cfg, in_dim=enc.dim, out_dim=llm_width, frame_rate=enc.frame_rate)   # cfg: ProjectorConfig
    embeds, mask = proj(features, frame_mask)      # [B, F, D_in], [B, F] -> [B, N, D_out], [B, N]
    proj.output_length(num_frames)                 # N for one utterance of num_frames real frames

Every projector respects the frame mask: padded frames never change the outputs at real positions, so a padded batch
gives the same embeddings as single utterances, and outputs at masked positions are zero. Inputs are cast to the
projector's dtype, so a bf16 encoder can feed a float32 projector.

Window-level Q-Former (SALMONN-style, as in arXiv 2412.15712): the (LayerNorm-ed) frames are cut into windows of
round(window_seconds * frame_rate) frames (17 at 50 Hz); `queries_per_window` learned queries, shared by all windows,
go through BERT layers - self-attention over the queries, cross-attention to the window's frames, FFN, each with a
residual and a *post*-LayerNorm like BERT and the BLIP-2/SALMONN Q-Former - and a final Linear maps them to the LLM
width. All windows of the batch run as one batch of B * n_windows short sequences. The last partial window attends
only to its real frames; windows past the end of an utterance produce masked (zero) outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ProjectorConfig", "Projector", "WindowQFormer", "MLPProjector", "LinearProjector", "PROJECTORS",
           "build_projector", "stack_frames"]

BERT_INIT_STD = 0.02  # BertConfig.initializer_range, used by BLIP-2 / SALMONN for the Q-Former and its queries
BERT_LN_EPS = 1e-12


@dataclass
class ProjectorConfig:
    kind: Literal["qformer", "mlp", "linear"] = "qformer"
    """Projector type: the paper's window-level Q-Former, a 2-layer MLP on stacked frames, or one Linear on them."""
    window_seconds: float = 1 / 3
    """Q-Former window length in seconds; round(window_seconds * frame_rate) frames (17 at 50 Hz)."""
    queries_per_window: int = 4
    """Learned query tokens per window (shared across windows) = LLM tokens per window."""
    layers: int = 4
    """Q-Former BERT layers, each with self-attention, cross-attention to the window and an FFN."""
    heads: int = 12
    """Attention heads in the Q-Former (hidden must be divisible by it)."""
    hidden: int = 768
    """Q-Former width (BERT-base)."""
    ffn: int = 3072
    """Q-Former feed-forward inner width."""
    dropout: float = 0.0
    """Dropout on attention probabilities and residual branches of the Q-Former (0 = off)."""
    downsample: int = 5
    """MLP / linear: number k of consecutive frames stacked into one token (50 Hz / 5 = 10 tokens per second)."""
    mlp_hidden: int = 2048
    """MLP inner width."""

    def __post_init__(self):
        if self.kind not in PROJECTORS:
            raise ValueError(f"projector.kind must be one of {sorted(PROJECTORS)}, got {self.kind!r}")
        if not self.window_seconds > 0:
            raise ValueError(f"projector.window_seconds must be > 0, got {self.window_seconds}")
        for name in ("queries_per_window", "layers", "heads", "hidden", "ffn", "downsample", "mlp_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"projector.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"projector.hidden={self.hidden} must be divisible by projector.heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"projector.dropout must be in [0, 1), got {self.dropout}")


def _ceil_div(n, k: int):
    return -(-n // k)  # works on ints and integer tensors alike


def stack_frames(features: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every k consecutive frames: [B, F, D] -> [B, ceil(F / k), k * D].

    Padded frames are zeroed first and the tail is zero-padded, so a stacked frame that is partly real does not
    depend on the padding. A stacked frame is real if any of its frames is.
    """
    b, f, d = features.shape
    n = _ceil_div(f, k)
    x = F.pad(torch.where(mask[..., None], features, 0), (0, 0, 0, n * k - f))
    m = F.pad(mask, (0, n * k - f))
    return x.reshape(b, n, k * d), m.reshape(b, n, k).any(-1)


class Projector(nn.Module):
    """Base class: `forward(features [B, F, D_in], mask [B, F]) -> (embeds [B, N, D_out], mask [B, N])`."""

    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int, frame_rate: float):
        super().__init__()
        self.cfg, self.in_dim, self.out_dim, self.frame_rate = cfg, in_dim, out_dim, frame_rate

    def output_length(self, num_frames):
        """Output tokens for `num_frames` real frames (int, or elementwise on an integer tensor)."""
        raise NotImplementedError

    @property
    def tokens_per_second(self) -> float:
        """Output tokens per second of audio (ignoring the rounding up of the last window or group)."""
        return self.frame_rate / self.cfg.downsample

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _summary(self) -> str:
        return f"stack {self.cfg.downsample} frames"

    def describe(self) -> str:
        """One line for logs: architecture, token rate and parameter count."""
        return (f"{type(self).__name__}({self._summary()}; {self.in_dim} -> {self.out_dim}, "
                f"{self.tokens_per_second:.2f} tokens/s): {self.num_parameters() / 1e6:.2f}M parameters "
                f"({self.num_parameters(trainable_only=True) / 1e6:.2f}M trainable)")

    def _finish(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Zero at masked positions: a consumer that forgets the mask (e.g. an unmasked mean-pool) sees zeros, not junk.
        return torch.where(mask[..., None], embeds, 0), mask

    def _input(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if features.dim() != 3 or features.shape[-1] != self.in_dim or mask.shape != features.shape[:2]:
            raise ValueError(f"{type(self).__name__} expects features [B, F, {self.in_dim}] and mask [B, F], got "
                             f"{tuple(features.shape)} and {tuple(mask.shape)}")
        dtype = next(self.parameters()).dtype
        return features.to(dtype), mask.to(device=features.device, dtype=torch.bool)


class LinearProjector(Projector):
    """Stack k frames, then one Linear to the LLM width."""

    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int, frame_rate: float):
        super().__init__(cfg, in_dim, out_dim, frame_rate)
        self.proj = nn.Linear(cfg.downsample * in_dim, out_dim)

    def output_length(self, num_frames):
        return _ceil_div(num_frames, self.cfg.downsample)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, m = stack_frames(*self._input(features, mask), self.cfg.downsample)
        return self._finish(self.proj(x), m)


class MLPProjector(LinearProjector):
    """Stack k frames, then Linear -> GELU -> Linear to the LLM width."""

    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int, frame_rate: float):
        Projector.__init__(self, cfg, in_dim, out_dim, frame_rate)
        self.proj = nn.Sequential(nn.Linear(cfg.downsample * in_dim, cfg.mlp_hidden), nn.GELU(),
                                  nn.Linear(cfg.mlp_hidden, out_dim))

    def _summary(self) -> str:
        return f"stack {self.cfg.downsample} frames, hidden {self.cfg.mlp_hidden}"


class _Attention(nn.Module):
    """BERT attention block: multi-head attention, output dense, dropout, residual, post-LayerNorm."""

    def __init__(self, hidden: int, kv_dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(kv_dim, hidden), nn.Linear(kv_dim, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=BERT_LN_EPS)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, lq, h = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # [n, L, h] -> [n, heads, L, h / heads]
            return t.view(n, t.shape[1], self.heads, h // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(kv)), split(self.v(kv)), attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        a = self.out(a.transpose(1, 2).reshape(n, lq, h))
        return self.norm(x + F.dropout(a, self.dropout, self.training))


class QFormerLayer(nn.Module):
    """One BERT layer of the Q-Former: self-attention over the queries, cross-attention to the frames, FFN."""

    def __init__(self, hidden: int, kv_dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = _Attention(hidden, hidden, heads, dropout)
        self.cross_attn = _Attention(hidden, kv_dim, heads, dropout)
        self.fc1, self.fc2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.norm = nn.LayerNorm(hidden, eps=BERT_LN_EPS)
        self.dropout = dropout

    def forward(self, q: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        q = self.self_attn(q, q)  # queries of one window see each other, never other windows
        q = self.cross_attn(q, frames, frame_mask)
        h = self.fc2(F.gelu(self.fc1(q)))  # exact (erf) GELU, as BERT
        return self.norm(q + F.dropout(h, self.dropout, self.training))


class WindowQFormer(Projector):
    """The paper's window-level Q-Former (see the module docstring)."""

    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int, frame_rate: float):
        super().__init__(cfg, in_dim, out_dim, frame_rate)
        self.window = round(cfg.window_seconds * frame_rate)
        if self.window < 1:
            raise ValueError(f"projector.window_seconds={cfg.window_seconds} is less than one frame at "
                             f"{frame_rate} Hz")
        self.input_norm = nn.LayerNorm(in_dim)
        self.queries = nn.Parameter(torch.zeros(1, cfg.queries_per_window, cfg.hidden))
        self.query_norm = nn.LayerNorm(cfg.hidden, eps=BERT_LN_EPS)  # BERT embeddings LayerNorm on the queries
        self.layers = nn.ModuleList(QFormerLayer(cfg.hidden, in_dim, cfg.heads, cfg.ffn, cfg.dropout)
                                    for _ in range(cfg.layers))
        self.proj = nn.Linear(cfg.hidden, out_dim)
        # BERT init inside the Q-Former (as BLIP-2 / SALMONN, trained from scratch); the final Linear keeps PyTorch's
        # default init like SALMONN's speech_llama_proj.
        for module in self.layers.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=BERT_INIT_STD)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.queries, std=BERT_INIT_STD)

    def _summary(self) -> str:
        c = self.cfg
        return (f"{c.layers} layers x {c.hidden} ({c.heads} heads, ffn {c.ffn}), {self.window}-frame windows x "
                f"{c.queries_per_window} queries")

    def output_length(self, num_frames):
        return _ceil_div(num_frames, self.window) * self.cfg.queries_per_window

    @property
    def tokens_per_second(self) -> float:
        return self.frame_rate / self.window * self.cfg.queries_per_window

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode every window of every utterance.

        Args:
            features: [B, F, in_dim] encoder frames.
            mask: [B, F] bool, True at real frames.

        Returns:
            embeds [B, ceil(F / window) * queries, out_dim] and mask [B, same], True for the queries of windows that
            hold at least one real frame.
        """
        x, mask = self._input(features, mask)
        b, f, _ = x.shape
        w, nq = self.window, self.cfg.queries_per_window
        nw = _ceil_div(f, w)
        # Zero padding before the LayerNorm: NaN/inf in padding would otherwise poison LayerNorm's weight gradient.
        x = self.input_norm(torch.where(mask[..., None], x, 0))
        x = F.pad(x, (0, 0, 0, nw * w - f)).reshape(b * nw, w, self.in_dim)
        frame_mask = F.pad(mask, (0, nw * w - f)).reshape(b * nw, w)
        window_real = frame_mask.any(-1)
        # A window with no real frame would softmax over nothing (NaN); let it see its (zeroed) frames, mask it later.
        attn_mask = (frame_mask | ~window_real[:, None])[:, None, None, :]  # [B * nw, 1 head, 1 query, w]
        q = self.query_norm(self.queries).expand(b * nw, -1, -1)
        q = F.dropout(q, self.cfg.dropout, self.training)
        for layer in self.layers:
            q = layer(q, x, attn_mask)
        embeds = self.proj(q).reshape(b, nw * nq, self.out_dim)
        return self._finish(embeds, window_real.reshape(b, nw).repeat_interleave(nq, dim=1))


PROJECTORS: dict[str, type[Projector]] = {"qformer": WindowQFormer, "mlp": MLPProjector, "linear": LinearProjector}


def build_projector(cfg: ProjectorConfig, in_dim: int, out_dim: int, frame_rate: float) -> Projector:
    """Build the projector named by ``cfg.kind``.

    Args:
        cfg: projector settings.
        in_dim: encoder feature width (1024 for HuBERT-large).
        out_dim: LLM hidden width (4096 for Llama-3.1-8B).
        frame_rate: encoder frames per second (50), which sets the Q-Former window in frames.

    Returns:
        The projector, with freshly initialised trainable parameters.
    """
    if cfg.kind not in PROJECTORS:
        raise ValueError(f"unknown projector kind {cfg.kind!r}; known: {sorted(PROJECTORS)}")
    if in_dim < 1 or out_dim < 1 or not frame_rate > 0:
        raise ValueError(f"need in_dim, out_dim >= 1 and frame_rate > 0, got {in_dim}, {out_dim}, {frame_rate}")
    return PROJECTORS[cfg.kind](cfg, in_dim, out_dim, frame_rate)
