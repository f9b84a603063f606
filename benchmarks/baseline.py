"""The research pipeline, re-created as the benchmark baseline.

One image at a time, eager attention, ``generate`` asked for every layer's attentions and
hidden states, the last layer's rows copied out with hard-coded offsets (valid for 640x480
only), one float32 ``.npy`` of attention and one of hidden states per image. Kept separate
from saldata on purpose: it must not share code with what it is compared to.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaNextForConditionalGeneration

BASE, ROWS, COLS = 576, 36, 48  # hard-coded for 640x480, as the research code did


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(args.model)
    model = (
        LlavaNextForConditionalGeneration.from_pretrained(
            args.model, attn_implementation="eager", dtype=getattr(torch, args.dtype)
        )
        .to(args.device)
        .eval()
    )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": args.prompt}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(Path(args.images).glob("*.jpg"))[: args.limit]
    loaded = time.perf_counter()
    for path in paths:
        image = Image.open(path).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
        inputs = processor(images=[image], text=[text], return_tensors="pt").to(args.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            gen = model.generate(
                **inputs,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                output_attentions=True,
                output_hidden_states=True,
                return_dict_in_generate=True,
            )
        first = int((inputs["input_ids"][0] == model.config.image_token_id).nonzero()[0, 0])
        attn, hidden = [], []
        for step in range(len(gen.attentions)):
            row = gen.attentions[step][-1][0, :, -1].float().cpu().numpy()  # (heads, seq)
            span = row[:, first : first + BASE + ROWS * (COLS + 1)]
            highres = span[:, BASE:].reshape(-1, ROWS, COLS + 1)[:, :, :COLS].reshape(len(row), -1)
            attn.append(np.concatenate([span[:, :BASE], highres], axis=1))
            hidden.append(gen.hidden_states[step][-1][0, -1].float().cpu().numpy())
        np.save(out / f"{path.stem}.npy", np.stack(attn).astype(np.float32))
        np.save(out / f"{path.stem}_hidden.npy", np.stack(hidden).astype(np.float32))
        tokens = gen.sequences[0, inputs["input_ids"].shape[1] :].tolist()
        (out / f"{path.stem}.json").write_text(json.dumps(tokens))
        del gen
    end = time.perf_counter()
    print(json.dumps({"images": len(paths), "seconds": end - start, "load_s": loaded - start, "loop_s": end - loaded}))


if __name__ == "__main__":
    main()
