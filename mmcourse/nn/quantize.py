"""Vector quantization (VQ-VAE, van den Oord et al. 2017): features -> the nearest of K learned codes.

For channels-first features z (B, D, *rest) — an image (B, D, H, W) or a video (B, D, T, H, W) — the channels
are moved last first, so each position's D-vector stays whole: z.movedim(1, -1).reshape(-1, D). (`z.view(-1, D)`
on channels-first memory would cut across positions and mix channels with time and space.) Then

    code(i)  = argmin_k ‖z_i − e_k‖²
    loss     = ‖sg[z] − e‖²  +  β ‖z − sg[e]‖²          codebook term + commitment term, β = 0.25
    output   = z + sg[e − z]                          straight-through: the value of e, the gradient of z

sg = stop-gradient (`.detach()`). The codebook term moves the codes towards the encoder outputs; without it the
codebook never learns. The commitment term keeps the encoder close to its codes. With `ema=True` the codebook is
not learned by gradient: each code moves to the running mean of the vectors assigned to it (decay γ), and only
the commitment term is returned. A code no vector picks is dead; with `reset_threshold` set, codes whose
running share of the assignments falls below threshold / K are re-seeded from random encoder outputs of the
current batch while training. Perplexity exp(H(code frequencies)) counts the codes in effective use (K at best).

Product quantization (Jégou et al. 2011; wav2vec 2.0's quantizer, Baevski et al. 2020) splits each D-vector into G
groups of D/G channels, each quantized by its own codebook of K codes: a position gets G codes, one of K^G
combinations, from G · K stored vectors — a finer quantization for the same codebook size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.utils import check_number, check_tensor

__all__ = ["VectorQuantizer", "ProductQuantizer", "QuantizerOutput", "perplexity"]


class QuantizerOutput(NamedTuple):
    quantized: Tensor  # (B, D, *rest) the codes, with the encoder's (straight-through) gradient
    codes: Tensor  # (B, *rest) int64 code indices; ProductQuantizer: (B, *rest, G)
    loss: Tensor  # codebook_loss + β · commitment_loss (EMA: β · commitment_loss)
    codebook_loss: Tensor  # ‖sg[z] − e‖² (mean over elements); 0 with EMA
    commitment_loss: Tensor  # ‖z − sg[e]‖²
    perplexity: Tensor  # exp(entropy of this batch's code frequencies); ProductQuantizer: one per group (G,)


def perplexity(codes: Tensor, num_codes: int) -> Tensor:
    """exp(−Σ p_k log p_k) of the code frequencies p in `codes` (any shape): 1 if one code, K if all equally."""
    check_number(num_codes, "num_codes", integer=True, low=1)
    _check_codes(codes, num_codes)
    if codes.numel() == 0:
        raise ValueError("codes: expected at least one code, got an empty tensor")
    p = torch.bincount(codes.flatten(), minlength=num_codes).float() / codes.numel()
    return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())


def _check_codes(codes: Tensor, num_codes: int) -> None:
    check_tensor(codes, "codes", dtype="int")
    if codes.numel() and (codes.min() < 0 or codes.max() >= num_codes):
        raise ValueError(f"codes must lie in [0, {num_codes}), got [{codes.min().item()}, {codes.max().item()}]")


class VectorQuantizer(nn.Module):
    """K codes of dimension D. forward(z (B, D, *rest)) -> QuantizerOutput.

    beta: commitment weight. ema: update codes by exponential moving averages (decay) instead of the codebook
    loss. reset_threshold: re-seed codes used less than threshold / K of the time (running share, decay
    `usage_decay`) from vectors of the batch, drawn with probability ∝ their squared distance to their code
    (k-means++), in training mode; None never resets.
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, *, ema: bool = False, decay: float = 0.99,
                 reset_threshold: float | None = None, usage_decay: float = 0.99, eps: float = 1e-5):
        super().__init__()
        check_number(num_codes, "num_codes", integer=True, low=2)  # one code quantizes everything to a constant
        check_number(dim, "dim", integer=True, low=1)
        check_number(beta, "beta", low=0)
        check_number(decay, "decay", low=0, high=1)
        check_number(usage_decay, "usage_decay", low=0, high=1)
        if reset_threshold is not None:
            check_number(reset_threshold, "reset_threshold", low=0, high=1)
        self.num_codes, self.dim, self.beta, self.ema = num_codes, dim, beta, ema
        self.decay, self.reset_threshold, self.usage_decay, self.eps = decay, reset_threshold, usage_decay, eps
        codebook = torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes)
        if ema:  # learned by averaging, not by gradient
            self.register_buffer("codebook", codebook)
            self.register_buffer("cluster_size", torch.ones(num_codes))  # each code: the mean of one vector, itself
            self.register_buffer("embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("usage", torch.full((num_codes,), 1 / num_codes))  # running share of assignments

    def nearest(self, flat: Tensor) -> Tensor:
        """flat (N, D) -> the index of each row's nearest code (N,), by ‖z‖² − 2 z·e + ‖e‖²."""
        e = self.codebook
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)
        return d.argmin(1)

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, *rest) -> their vectors, channels first (B, D, *rest): decode tokens without an encoder."""
        _check_codes(codes, self.num_codes)
        return F.embedding(codes, self.codebook).movedim(-1, 1)

    def encode(self, z: Tensor) -> Tensor:
        """z (B, D, *rest) -> the nearest codes (B, *rest), in any mode and without touching the codebook."""
        z_last = self._channels_last(z)
        return self.nearest(z_last.detach().reshape(-1, self.dim)).view(z_last.shape[:-1])

    def forward(self, z: Tensor) -> QuantizerOutput:
        z_last = self._channels_last(z)  # (B, *rest, D): each position's vector contiguous
        flat = z_last.reshape(-1, self.dim)
        codes = self.nearest(flat.detach())
        e = F.embedding(codes, self.codebook).view_as(z_last)  # the chosen codes, before this step moves any
        if self.training:
            self._update(flat.detach(), codes)
        commitment = F.mse_loss(z_last, e.detach())
        codebook = z.new_zeros(()) if self.ema else F.mse_loss(e, z_last.detach())
        quantized = (z_last + (e - z_last).detach()).movedim(-1, 1)
        return QuantizerOutput(quantized, codes.view(z_last.shape[:-1]), codebook + self.beta * commitment,
                               codebook, commitment, perplexity(codes, self.num_codes))

    def _channels_last(self, z: Tensor) -> Tensor:
        check_tensor(z, "z", dtype="float")
        if z.ndim < 2 or z.shape[1] != self.dim:
            raise ValueError(f"z: expected channels-first features (B, {self.dim}, ...) with {self.dim} channels "
                             f"(the code dimension), got shape {tuple(z.shape)}")
        if z.numel() == 0:
            raise ValueError(f"z: expected at least one feature vector, got shape {tuple(z.shape)}")
        return z.movedim(1, -1)

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> None:
        """Training only: the usage statistics, the EMA codebook update, and the dead-code reset."""
        onehot = F.one_hot(codes, self.num_codes).type_as(flat)  # (N, K)
        counts = onehot.sum(0)
        self.usage.lerp_(counts / len(flat), 1 - self.usage_decay)
        if self.ema:
            self.cluster_size.lerp_(counts, 1 - self.decay)
            self.embed_sum.lerp_(onehot.t() @ flat, 1 - self.decay)
            n = self.cluster_size.sum()  # Laplace smoothing keeps an unused code's size away from 0
            size = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
            self.codebook.copy_(self.embed_sum / size[:, None])
        if self.reset_threshold is not None:
            dead = (self.usage < self.reset_threshold / self.num_codes).nonzero().flatten()
            if len(dead):
                # k-means++ seeding: a vector is picked with probability ∝ its squared distance to its code, so
                # new codes go where the codebook fits worst, not where the data are most (the background)
                error = (flat - self.codebook[codes]).pow(2).sum(1) + 1e-12
                pick = torch.multinomial(error, min(len(dead), len(flat)))  # distinct, when there are enough
                if len(pick) < len(dead):
                    pick = pick[torch.randint(len(pick), (len(dead),), device=flat.device)]
                seeds = flat[pick]
                self.codebook[dead] = seeds
                self.usage[dead] = 1 / self.num_codes
                if self.ema:
                    self.embed_sum[dead] = seeds
                    self.cluster_size[dead] = 1.0


class ProductQuantizer(nn.Module):
    """G VectorQuantizers of K codes, each on its own D/G channels. forward(z (B, D, *rest)) -> QuantizerOutput with
    codes (B, *rest, G) and perplexity (G,); the losses are the means over the groups, so over all D channels, as one
    VectorQuantizer's. Keyword arguments go to each group's VectorQuantizer."""

    def __init__(self, num_codes: int, dim: int, groups: int = 2, **quantizer_kw):
        super().__init__()
        check_number(dim, "dim", integer=True, low=1)
        check_number(groups, "groups", integer=True, low=1)
        if dim % groups:
            raise ValueError(f"groups: expected a divisor of dim={dim} (each group quantizes dim / groups "
                             f"channels), got {groups}")
        self.num_codes, self.dim, self.groups = num_codes, dim, groups
        self.quantizers = nn.ModuleList(VectorQuantizer(num_codes, dim // groups, **quantizer_kw)
                                        for _ in range(groups))

    def forward(self, z: Tensor) -> QuantizerOutput:
        outs = [vq(part) for vq, part in zip(self.quantizers, self._split(z), strict=True)]
        return QuantizerOutput(torch.cat([q.quantized for q in outs], 1), torch.stack([q.codes for q in outs], -1),
                               *(torch.stack(terms).mean() for terms in zip(*(q[2:5] for q in outs), strict=True)),
                               torch.stack([q.perplexity for q in outs]))

    def encode(self, z: Tensor) -> Tensor:
        """z (B, D, *rest) -> codes (B, *rest, G), without touching the codebooks."""
        return torch.stack([vq.encode(part) for vq, part in zip(self.quantizers, self._split(z), strict=True)], -1)

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, *rest, G) -> their vectors, channels first (B, D, *rest)."""
        check_tensor(codes, "codes", dtype="int")
        if codes.ndim < 2 or codes.shape[-1] != self.groups:
            raise ValueError(f"codes: expected (B, ..., {self.groups}), one code per group last, "
                             f"got shape {tuple(codes.shape)}")
        return torch.cat([vq.lookup(codes[..., g]) for g, vq in enumerate(self.quantizers)], 1)

    def _split(self, z: Tensor) -> tuple[Tensor, ...]:
        check_tensor(z, "z", dtype="float")
        if z.ndim < 2 or z.shape[1] != self.dim:
            raise ValueError(f"z: expected channels-first features (B, {self.dim}, ...) with {self.dim} channels, "
                             f"got shape {tuple(z.shape)}")
        return z.chunk(self.groups, 1)
