"""VideoBERT (Sun et al. 2019) on the course's scale: video becomes tokens through a VQ-VAE, then one BERT reads
video tokens and text tokens together and learns by filling in masked positions of both.

    video (B, 3, T, R, R) --3D-conv encoder--> z (B, D, T/f, R/4, R/4) --ProductQuantizer--> codes (B, T/f, R/4, R/4, G)
    [video codes | text ids] + position + modality --Transformer (bidirectional)--> video logits | text logits

VideoBERT clustered pre-trained S3D features with hierarchical k-means; here the tokenizer is learned end to end as
a VQ-VAE (van den Oord et al. 2017), whose decoder shows what the tokens keep; f = 1 or 2 frames per token. Each
token is G codes, one per group of D/G channels (product quantization; G = 1 is a plain VQ-VAE); VideoBERT embeds a
token as the sum of its G codes' embeddings and predicts all G codes of a masked token.
Captioning fills a row of masked text positions from the video tokens alone, a few positions per round, most
confident first (mask-predict, Ghazvininejad et al. 2019).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.nn import ProductQuantizer, QuantizerOutput, Transformer
from mmcourse.utils import check_number, check_sizes, check_tensor, check_token_id

__all__ = ["VideoTokenizer", "VideoBERT"]


class VideoTokenizer(nn.Module):
    """A VQ-VAE for clips, channels first. forward(video (B, 3, T, R, R)) -> (reconstruction, QuantizerOutput).

    One token per `frames_per_token` frames (1 or 2) × 4 × 4 pixels: the encoder halves space twice, and time once
    when frames_per_token is 2. A token is `groups` codes of `num_codes` each, on dim / groups channels each.
    """

    def __init__(self, num_codes: int = 128, dim: int = 32, width: int = 64, frames_per_token: int = 1,
                 groups: int = 1, **quantizer_kw):
        super().__init__()
        check_sizes(num_codes=num_codes, dim=dim, width=width)
        if frames_per_token not in (1, 2):
            raise ValueError(f"frames_per_token must be 1 or 2, got {frames_per_token!r}")
        self.frames_per_token = f = frames_per_token
        self.encoder = nn.Sequential(
            nn.Conv3d(3, width // 2, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)), nn.ReLU(),
            nn.Conv3d(width // 2, width, (f, 4, 4), stride=(f, 2, 2), padding=(0, 1, 1)), nn.ReLU(),
            nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1)), nn.ReLU(),
            nn.Conv3d(width, dim, 1),
        )
        self.quantizer = ProductQuantizer(num_codes, dim, groups, **quantizer_kw)
        self.decoder = nn.Sequential(
            nn.Conv3d(dim, width, (1, 3, 3), padding=(0, 1, 1)), nn.ReLU(),
            nn.ConvTranspose3d(width, width // 2, (f, 4, 4), stride=(f, 2, 2), padding=(0, 1, 1)), nn.ReLU(),
            nn.ConvTranspose3d(width // 2, 3, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1)),
        )

    def forward(self, video: Tensor) -> tuple[Tensor, QuantizerOutput]:
        _check_video(video, self.frames_per_token)
        q = self.quantizer(self.encoder(video))
        return self.decoder(q.quantized), q

    @torch.no_grad()
    def tokenize(self, video: Tensor) -> Tensor:
        """video (B, 3, T, R, R) -> codes (B, T/f, R/4, R/4, G), f = frames_per_token. Never updates the codebooks,
        even in training mode."""
        _check_video(video, self.frames_per_token)
        return self.quantizer.encode(self.encoder(video))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, T', H', W', G) -> frames (B, 3, f·T', 4H', 4W'): what the tokens alone keep of a clip."""
        return self.decoder(self.quantizer.lookup(codes))


def _check_video(video: Tensor, frames_per_token: int) -> None:
    check_tensor(video, "video", ndim=5, dtype="float")
    B, C, T, H, W = video.shape
    if C != 3 or B == 0 or T % frames_per_token or H % 4 or W % 4:
        raise ValueError(f"video: expected (B, 3, T, H, W), channels first, B >= 1, T a multiple of "
                         f"{frames_per_token}, H and W multiples of 4 "
                         f"(frames as (B, T, 3, H, W)? use video.transpose(1, 2)); got shape {tuple(video.shape)}")


class VideoBERT(nn.Module):
    """One bidirectional transformer over [video tokens | text tokens].

    forward(codes (B, Nv, G), ids (B, L), text_padding_mask (B, L) True = padding) -> (video logits (B, Nv, G, K),
    text logits (B, L, V)). A video token is G codes, each of K plus a mask code, id K (`video_mask_id`); its
    embedding is the sum of its G codes' embeddings (one table per group). The text vocabulary includes its own mask
    token `text_mask_id`. Positions are learned, one table per modality, and a modality embedding says which stream
    a token is from.
    """

    def __init__(self, num_codes: int, video_length: int, vocab_size: int, text_length: int, text_mask_id: int,
                 groups: int = 1, width: int = 64, layers: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        check_number(num_codes, "num_codes", integer=True, low=2)
        check_sizes(video_length=video_length, vocab_size=vocab_size, text_length=text_length, groups=groups)
        check_token_id(text_mask_id, "text_mask_id", vocab_size)
        self.num_codes, self.groups, self.video_length, self.vocab_size = num_codes, groups, video_length, vocab_size
        self.text_length, self.video_mask_id, self.text_mask_id = text_length, num_codes, text_mask_id
        self.video_embedding = nn.Embedding(groups * (num_codes + 1), width)  # group g's code c: row g (K + 1) + c
        self.text_embedding = nn.Embedding(vocab_size, width)
        self.video_position = nn.Parameter(0.02 * torch.randn(video_length, width))
        self.text_position = nn.Parameter(0.02 * torch.randn(text_length, width))
        self.modality_embedding = nn.Embedding(2, width)  # 0 video, 1 text
        self.transformer = Transformer(width, layers, heads, dropout=dropout)
        self.ln_final = nn.LayerNorm(width)
        self.video_head = nn.Linear(width, groups * num_codes)
        self.text_head = nn.Linear(width, vocab_size)
        for table in (self.video_embedding, self.text_embedding, self.modality_embedding):
            nn.init.normal_(table.weight, std=0.02)  # the scale of the positions, which must not be drowned

    def forward(self, codes: Tensor, ids: Tensor, text_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_tensor(codes, "codes", shape=("B", self.video_length, self.groups), dtype="int")
        check_tensor(ids, "ids", shape=(codes.shape[0], "L"), dtype="int")
        B, L = ids.shape
        if L > self.text_length:
            raise ValueError(f"ids: at most text_length={self.text_length} tokens, got {L}")
        for name, x, n in (("codes", codes, self.num_codes + 1), ("ids", ids, self.vocab_size)):
            if x.numel() and (x.min() < 0 or x.max() >= n):
                raise ValueError(f"{name}: expected ids in [0, {n}), got [{x.min().item()}, {x.max().item()}]")
        rows = codes + (self.num_codes + 1) * torch.arange(self.groups, device=codes.device)
        video = self.video_embedding(rows).sum(2) + self.video_position + self.modality_embedding.weight[0]
        text = self.text_embedding(ids) + self.text_position[:L] + self.modality_embedding.weight[1]
        padding = None
        if text_padding_mask is not None:
            check_tensor(text_padding_mask, "text_padding_mask", shape=(B, L), dtype=torch.bool)
            padding = torch.cat([text_padding_mask.new_zeros(B, self.video_length), text_padding_mask], 1)
        h = self.ln_final(self.transformer(torch.cat([video, text], 1), key_padding_mask=padding))
        video_logits = self.video_head(h[:, :self.video_length]).unflatten(-1, (self.groups, self.num_codes))
        return video_logits, self.text_head(h[:, self.video_length:])

    @torch.no_grad()
    def fill_text(self, codes: Tensor, length: int | None = None, rounds: int = 4,
                  start_id: int | None = None) -> Tensor:
        """Caption clips from their video tokens: start from `length` text mask tokens (default text_length) and
        fill them in `rounds` rounds, each time keeping the most confident predictions of the still-masked
        positions (mask-predict). With `start_id` the first position holds that token (a caption's start token,
        given, not guessed) and the other length - 1 are filled. codes (B, Nv, G) -> ids (B, length)."""
        check_tensor(codes, "codes", shape=("B", self.video_length, self.groups), dtype="int")
        if not len(codes):
            raise ValueError("codes: expected the tokens of at least one clip, got an empty batch")
        length = self.text_length if length is None else length
        check_number(length, "length", integer=True, low=1 if start_id is None else 2, high=self.text_length)
        ids = torch.full((len(codes), length), self.text_mask_id, dtype=torch.long, device=codes.device)
        masked = torch.ones_like(ids, dtype=torch.bool)
        if start_id is not None:
            check_token_id(start_id, "start_id", self.vocab_size)
            ids[:, 0], masked[:, 0] = start_id, False
        n = int(masked[0].sum())  # positions to fill
        check_number(rounds, "rounds", integer=True, low=1, high=n)
        for r in range(rounds):
            probs = self(codes, ids)[1].softmax(-1)
            probs[..., self.text_mask_id] = 0
            conf, pred = probs.max(-1)
            conf = conf.masked_fill(~masked, -1)
            k = n * (r + 1) // rounds - n * r // rounds  # positions to fill this round
            keep = torch.zeros_like(masked).scatter_(1, conf.topk(k, dim=1).indices, True)
            ids = torch.where(keep, pred, ids)
            masked &= ~keep
        return ids
