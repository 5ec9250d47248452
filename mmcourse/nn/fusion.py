"""Fusion blocks: ways to combine two modalities, each given as a set of tokens a (B, La, Da) and b (B, Lb, Db).

Every block returns one fused vector per example (B, width) for a classifier head, except late fusion, which
combines each modality's own logits:

    early        concatenate the raw inputs, flattened, then one MLP (no modality-specific processing)
    late         each modality classified on its own; the logits averaged with weights (softmax of learned
                 scores) -- the decision is a sum f(a) + g(b), which cannot express an interaction
    concat       intermediate: pool each token set, concatenate, MLP
    tensor       TFN (Zadeh et al., 2017): pool, project, append a 1, outer product [z_a; 1] ⊗ [z_b; 1], MLP --
                 the unimodal terms and every pairwise product z_a,i · z_b,j
    cross        the tokens of `a` attend to the tokens of `b` (one pre-LN block with cross-attention), pooled
    transformer  one token sequence [CLS; a + e_a; b + e_b] with learned modality embeddings e, self-attention
                 over both, the CLS output

`GatedFusion` fuses two aligned sequences frame by frame instead (audio-visual speech): a learned gate
g_t = σ(MLP([a_t; b_t])) ∈ (0, 1) says how much to trust a at frame t, and the output is g_t a_t + (1 - g_t) b_t.

`modality_dropout` zeroes one whole stream for a random part of the batch (AV-HuBERT), so that a model learns to
answer from either stream alone; a missing modality at test time is then the same zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.nn.transformer import MLP, Transformer
from mmcourse.utils import check_number, check_sizes, check_tensor, describe

__all__ = ["check_pair", "EarlyFusion", "LateFusion", "ConcatFusion", "TensorFusion", "CrossAttentionFusion",
           "MultimodalTransformerFusion", "GatedFusion", "modality_dropout"]


def check_pair(a: Tensor, b: Tensor, dims: tuple[int | None, int | None] = (None, None)) -> None:
    """a (B, La, Da) and b (B, Lb, Db): float token sets of one batch (Da, Db checked where given)."""
    check_tensor(a, "a", shape=("B", "La", dims[0]), dtype="float")
    check_tensor(b, "b", shape=(a.shape[0], "Lb", dims[1]), dtype="float")


class EarlyFusion(nn.Module):
    """Both inputs flattened and concatenated, then Linear-GELU-Linear: (B, *shape_a), (B, *shape_b) -> (B, width)."""

    def __init__(self, in_a: int, in_b: int, width: int, hidden: int = 256):
        super().__init__()
        check_sizes(in_a=in_a, in_b=in_b, width=width, hidden=hidden)
        self.in_a, self.in_b = in_a, in_b
        self.mlp = nn.Sequential(nn.Linear(in_a + in_b, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        check_tensor(a, "a", dtype="float")
        check_tensor(b, "b", dtype="float")
        if a.ndim == 0 or b.ndim == 0 or len(a) != len(b):
            raise ValueError(f"a and b: expected (B, ...) inputs of one batch, got {tuple(a.shape)}, {tuple(b.shape)}")
        x = torch.cat([a.flatten(1), b.flatten(1)], 1)
        if x.shape[1] != self.in_a + self.in_b:
            raise ValueError(f"a and b: expected {self.in_a} + {self.in_b} input features per example, got "
                             f"{a[0].numel()} + {b[0].numel()} (shapes {tuple(a.shape)}, {tuple(b.shape)})")
        return self.mlp(x)


class LateFusion(nn.Module):
    """Per-modality logits combined as Σ_m w_m · logits_m, w = softmax(scores) (learned, equal at the start).

    A modality given as None is left out and the weights of the others renormalised (late fusion degrades
    gracefully by construction)."""

    def __init__(self, n_modalities: int = 2):
        super().__init__()
        check_sizes(n_modalities=n_modalities)
        self.scores = nn.Parameter(torch.zeros(n_modalities))

    def forward(self, logits: list[Tensor | None]) -> Tensor:
        if not isinstance(logits, (list, tuple)) or len(logits) != len(self.scores):
            raise ValueError(f"logits: expected {len(self.scores)} logit tensors (a list), got {describe(logits)}")
        present = [i for i, z in enumerate(logits) if z is not None]
        if not present:
            raise ValueError("logits: every modality is missing (all None)")
        w = self.scores[present].softmax(0)
        return sum(w_m * logits[i] for w_m, i in zip(w, present, strict=True))


class ConcatFusion(nn.Module):
    """Mean-pool each token set, concatenate, LayerNorm, MLP: (B, La, Da), (B, Lb, Db) -> (B, width)."""

    def __init__(self, dim_a: int, dim_b: int, width: int):
        super().__init__()
        check_sizes(dim_a=dim_a, dim_b=dim_b, width=width)
        self.dims = dim_a, dim_b
        self.ln = nn.LayerNorm(dim_a + dim_b)
        self.proj = nn.Linear(dim_a + dim_b, width)
        self.mlp = MLP(width, 2.0)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        check_pair(a, b, self.dims)
        return self.mlp(self.proj(self.ln(torch.cat([a.mean(1), b.mean(1)], 1))))


class TensorFusion(nn.Module):
    """TFN: z_m = Linear(mean-pooled tokens of m) (rank each), z = vec([z_a; 1] ⊗ [z_b; 1]), then an MLP.

    The appended 1s keep the unimodal terms z_a and z_b inside z beside all rank² products z_a,i z_b,j:
    (B, La, Da), (B, Lb, Db) -> (B, width)."""

    def __init__(self, dim_a: int, dim_b: int, width: int, rank: int = 16):
        super().__init__()
        check_sizes(dim_a=dim_a, dim_b=dim_b, width=width, rank=rank)
        self.dims = dim_a, dim_b
        self.proj_a, self.proj_b = nn.Linear(dim_a, rank), nn.Linear(dim_b, rank)
        self.mlp = nn.Sequential(nn.Linear((rank + 1) ** 2, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        check_pair(a, b, self.dims)
        one = a.new_ones(a.shape[0], 1)
        za = torch.cat([self.proj_a(a.mean(1)), one], 1)  # (B, rank + 1)
        zb = torch.cat([self.proj_b(b.mean(1)), one], 1)
        return self.mlp((za[:, :, None] * zb[:, None, :]).flatten(1))  # (B, (rank + 1)²)


class CrossAttentionFusion(nn.Module):
    """The tokens of `a`, projected to width, attend to the tokens of `b` in pre-LN blocks (self-attention,
    cross-attention, MLP), then are mean-pooled and normalised: (B, La, Da), (B, Lb, Db) -> (B, width), and with
    return_weights the last block's cross-attention (B, heads, La, Lb)."""

    def __init__(self, dim_a: int, dim_b: int, width: int, heads: int = 4, layers: int = 1):
        super().__init__()
        check_sizes(dim_a=dim_a, dim_b=dim_b, width=width)
        self.dims = dim_a, dim_b
        self.proj = nn.Linear(dim_a, width)
        self.blocks = Transformer(width, layers, heads, cross_dim=dim_b)
        self.ln = nn.LayerNorm(width)

    def forward(self, a: Tensor, b: Tensor, return_weights: bool = False):
        check_pair(a, b, self.dims)
        out = self.blocks(self.proj(a), b, return_attn=return_weights)
        x = self.ln((out.x if return_weights else out).mean(1))
        return (x, out.cross_attentions[-1]) if return_weights else x


class MultimodalTransformerFusion(nn.Module):
    """[CLS; proj_a(a) + e_0; proj_b(b) + e_1] through a pre-LN transformer; the normalised CLS output (B, width).

    e = `modality_embed`, an nn.Embedding(2, width) indexed with long ids made on the tokens' own device."""

    def __init__(self, dim_a: int, dim_b: int, width: int, heads: int = 4, layers: int = 1):
        super().__init__()
        check_sizes(dim_a=dim_a, dim_b=dim_b, width=width)
        self.dims = dim_a, dim_b
        self.proj_a, self.proj_b = nn.Linear(dim_a, width), nn.Linear(dim_b, width)
        self.modality_embed = nn.Embedding(2, width)
        self.cls = nn.Parameter(torch.randn(width) * 0.02)
        self.transformer = Transformer(width, layers, heads, mlp_ratio=2.0)
        self.ln = nn.LayerNorm(width)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        check_pair(a, b, self.dims)
        ids = torch.arange(2, device=a.device)  # long, on the inputs' device
        e_a, e_b = self.modality_embed(ids)
        x = torch.cat([self.cls.expand(a.shape[0], 1, -1), self.proj_a(a) + e_a, self.proj_b(b) + e_b], 1)
        return self.ln(self.transformer(x)[:, 0])


class GatedFusion(nn.Module):
    """Per-frame gated sum of two aligned streams: a, b (B, T, dim) -> (g a + (1 - g) b (B, T, dim), g (B, T)).

    g_t = σ(w₂ · GELU(W₁ [a_t; b_t])): one trust value per frame, read from both streams, so that a frame whose
    audio is drowned in noise can lean on the lips. At the start g = 1/2 (the last layer is zero)."""

    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        check_sizes(dim=dim, hidden=hidden)
        self.dim = dim
        self.gate = nn.Sequential(nn.Linear(2 * dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.gate[-1].weight)
        nn.init.zeros_(self.gate[-1].bias)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        check_tensor(a, "a", shape=("B", "T", self.dim), dtype="float")
        check_tensor(b, "b", shape=tuple(a.shape), dtype="float")
        g = torch.sigmoid(self.gate(torch.cat([a, b], -1)))  # (B, T, 1)
        return g * a + (1 - g) * b, g[..., 0]


def modality_dropout(a: Tensor, b: Tensor, p: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Zero one whole stream -- a or b, chosen evenly -- in a random fraction p of the examples (never both).

    a (B, ...), b (B, ...) -> new tensors of the same shapes (the inputs are not modified)."""
    check_number(p, "p", low=0, high=1)
    check_tensor(a, "a")
    check_tensor(b, "b")
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise ValueError(f"modality_dropout: a and b must have the same batch size, got {a.shape[0]} and {b.shape[0]}")
    u = torch.rand(2, a.shape[0], generator=generator).to(a.device)
    drop = u[0] < p
    drop_a, drop_b = drop & (u[1] < 0.5), drop & (u[1] >= 0.5)
    keep = lambda x, d: x * (~d).to(x.dtype).view(-1, *[1] * (x.ndim - 1))  # noqa: E731
    return keep(a, drop_a), keep(b, drop_b)
