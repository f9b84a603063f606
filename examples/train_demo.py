"""One epoch of a tiny language-driven saliency model on a saldata output.

    saldata extract --dataset demo --model tiny-random --out runs/demo
    python examples/train_demo.py            # or: python examples/train_demo.py OTHER_OUTPUT

The model scores each generated token from its hidden state, mixes the tokens' high-res
attention maps with those scores, and is trained to match the ground-truth saliency map
(KL divergence on the attention grid). No dataloader code of its own: SaliencyDataset pads,
masks and normalises.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from saldata.errors import SaldataError
from saldata.readers.torch_dataset import SaliencyDataset

DEFAULT_OUT = "runs/demo"  # where the README's quick start writes


class TokenMixer(torch.nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = torch.nn.Linear(hidden_size, 1)

    def forward(self, hidden, maps, mask):  # (B, T, D), (B, T, R, C), (B, T)
        logits = self.score(hidden).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = logits.softmax(dim=1)
        mixed = torch.einsum("bt,btrc->brc", weights, maps)
        return mixed / mixed.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT, help=f"a saldata output (default: {DEFAULT_OUT})")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    try:
        data = SaliencyDataset(args.out, normalize="sum", image_size=(160, 120))
    except SaldataError as exc:  # most often: the quick start has not been run yet
        quick_start = f" Make it with: saldata extract --dataset demo --model tiny-random --out {DEFAULT_OUT}"
        sys.exit(f"Error: {exc}{quick_start if args.out == DEFAULT_OUT else ''}")
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    model = TokenMixer(data[0]["hidden"].shape[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step, batch in enumerate(loader):
        rows, cols = batch["attn_highres"].shape[-2:]
        target = F.adaptive_avg_pool2d(batch["saliency"][:, None], (rows, cols))[:, 0]
        target = target / target.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        predicted = model(batch["hidden"], batch["attn_highres"], batch["mask"])
        keep = batch["has_ground_truth"]
        loss = F.kl_div(predicted[keep].clamp_min(1e-12).log(), target[keep], reduction="batchmean")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step}: KL {loss.item():.4f} on {int(keep.sum())} images")
    print(f"one epoch over {len(data)} images done")


if __name__ == "__main__":
    main()
