"""The research's language-only model and its loss, reduced to what consumes the loader's tensors.

Written from ``model.py`` (``Blind_Transformer_MS``), ``loss.py`` and ``trainer.py`` of
github.com/szzexpoi/language_att, not copied: the same data path with fewer, smaller layers.
Hidden states plus a fixed sin-cos position embedding of ``max_len`` rows go through pre-norm
transformer blocks; a linear layer scores each row, rows past ``valid_len`` are masked (-1e4)
before a softmax over rows; those weights sum the rows' patch and base attention maps
(per head); each sum, with 16 learned prior maps, goes through one shared convolutional decoder,
is upsampled to the trainer's 240x320, and a head turns the two into a map, softmaxed over its
pixels. The loss is the trainer's: -NSS against the fixation map, -2 CC and +10 KLD against the
saliency map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPSILON = 1e-7  # loss.py's
PRIORS = 16  # learned prior maps per grid (model.py's Learned_Prior(16, ...))


def sincos_positions(dim: int, length: int) -> torch.Tensor:
    """(1, length, dim): sin of position x frequency in the first half, cos in the second."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    angles = np.outer(np.arange(length), omega)
    return torch.from_numpy(np.concatenate([np.sin(angles), np.cos(angles)], axis=1)).float()[None]


class LanguageOnlyModel(nn.Module):
    def __init__(self, input_dim: int, input_head: int, max_len: int, patch_grid: tuple[int, int], out_size):
        super().__init__()
        self.register_buffer("pos_embed", sincos_positions(input_dim, max_len))
        heads = 2 if input_dim % 2 == 0 else 1
        self.language_decoder = nn.TransformerEncoderLayer(
            input_dim, heads, 4 * input_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.language_attn = nn.Linear(input_dim, 1)
        self.prior_patch = nn.Parameter(torch.rand(PRIORS, *patch_grid))
        self.prior_base = nn.Parameter(torch.rand(PRIORS, 24, 24))
        self.sal_decoder = nn.Sequential(nn.Conv2d(input_head + PRIORS, 8, 3, padding=1), nn.ReLU(), nn.Upsample(2))
        self.sal_header = nn.Conv2d(16, 1, 3, padding=1)
        self.out_size = tuple(out_size)

    def forward(self, language, patch_mapping, base_mapping, valid_len):
        x = self.language_decoder(language + self.pos_embed)
        x = F.dropout(x, 0.3, self.training)
        weights = self.language_attn(x).squeeze(-1)  # (b, rows)
        padding = torch.arange(weights.shape[1])[None, :] >= torch.as_tensor(valid_len)[:, None]
        weights = F.softmax(weights.masked_fill(padding, -1e4), dim=-1)[:, :, None, None, None]
        b = language.shape[0]
        maps = []
        for mapping, prior in ((base_mapping, self.prior_base), (patch_mapping, self.prior_patch)):
            summed = (weights * mapping).sum(1)  # (b, heads, R, C)
            decoded = self.sal_decoder(torch.cat([summed, prior.expand(b, *prior.shape)], dim=1))
            maps.append(F.interpolate(decoded, self.out_size, mode="bilinear"))
        saliency = self.sal_header(torch.cat(maps, dim=1)).squeeze(1)
        return F.softmax(saliency.reshape(b, -1), dim=-1).reshape(saliency.shape)


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return x / (x.max(-1, keepdim=True)[0] + EPSILON)


def nss(pred, fixations):
    pred, fixations = _normalised(pred.flatten(1)), fixations.flatten(1)
    pred = (pred - pred.mean(-1, keepdim=True)) / (pred.std(-1, keepdim=True) + EPSILON)
    return ((pred * fixations).sum(-1) / (fixations.sum(-1) + EPSILON)).mean()


def cc(pred, saliency):
    pred, saliency = _normalised(pred.flatten(1)), saliency.flatten(1)
    pred = pred / (pred.sum(-1, keepdim=True) + EPSILON)
    saliency = saliency / (saliency.sum(-1, keepdim=True) + EPSILON)
    n = pred.shape[-1]
    num = (pred * saliency).sum(-1) - pred.sum(-1) * saliency.sum(-1) / n
    den = torch.sqrt(((pred**2).sum(-1) - pred.sum(-1) ** 2 / n) * ((saliency**2).sum(-1) - saliency.sum(-1) ** 2 / n))
    return (num / (den + EPSILON)).mean()


def kld(pred, saliency):
    pred, saliency = _normalised(pred.flatten(1)), saliency.flatten(1)
    saliency = saliency / saliency.sum(-1, keepdim=True)
    pred = pred / (pred.sum(-1, keepdim=True) + EPSILON)
    return (saliency * torch.log(saliency / (pred + EPSILON) + EPSILON)).sum(-1).mean()


def trainer_loss(pred, fixations, saliency):
    """trainer.py's loss: -NSS(pred, fixations) - 2 CC(pred, saliency) + 10 KLD(pred, saliency)."""
    return -nss(pred, fixations) - 2 * cc(pred, saliency) + 10 * kld(pred, saliency)
