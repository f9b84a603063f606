"""``--format language-att``: the files the language-driven saliency trainer reads, from one captured layer.

The SALICON loader of the "Language-driven Visual Saliency Prediction" work reads, under one
folder (its ``--language_path``):

- ``hidden_state/{split}/<id>.npy``: (rows, D) hidden states;
- ``attention/{split}/<id>.npy``: ``np.save`` of a dict, ``base`` (rows, H, 24, 24) and ``patch``
  (rows, H, R, C): raw attention of every head, not normalised (the loader normalises);
- ``caption.json``: ``{split: {id: {"merged_token": text, "raw_token": [one string per row],
  "ended_with_eos": bool}}}`` (the trainer reads the first two; the third is saldata's);
- ``salicon_valid.json``: ``{split: {"<id>.npy": bool}}``; it loads the files marked true and
  fails (KeyError) on a file it finds without a key.

Row r is the decoding step that produced generated token r + 1 (``trainer_rows``); ``raw_token``
names each row's token (EOS included), ``merged_token`` is the text of tokens 1 to n_tokens - 1
(EOS is never text). Arrays keep the store's dtype (float16). An image with no rows (fewer than
two tokens and no EOS) still gets its files, of zero rows, and is marked false: the trainer
cannot train on it.

The last row of an image that ended with EOS (``images.ended_with_eos``) is the step that
produced EOS, as in the research. An image that ran to ``--max-new-tokens`` without EOS has no
such row: its last row is the step that produced its last generated token, a real word (often
cut mid-description), and ``raw_token``'s last string is that word, never an EOS that was not
generated. caption.json says which is which (``ended_with_eos``), and the export counts the images
without EOS. The trainer's ``language_parsing`` mode labels every image's last row EOS; with
``--require-eos`` the images without one are marked false, so it never labels a word EOS.
"""

from __future__ import annotations

import numpy as np

from saldata.analysis.rows import trainer_rows
from saldata.datasets.ground_truth import GT_OK
from saldata.errors import ConfigError
from saldata.exporters.base import Exporter, export_name, json_bytes, npy_bytes
from saldata.words import plural

FORMAT = "language-att"
HIDDEN_DIRNAME, ATTENTION_DIRNAME = "hidden_state", "attention"
CAPTION_FILE, VALID_FILE = "caption.json", "salicon_valid.json"
SPACE_MARKER, NEWLINE_MARKER = "\u0120", "\u010a"  # byte-level BPE's Ġ and Ċ in token strings
TRAINER_SCRIPT = "main.py"
# What the trainer assumes of the 8B model on 640x480 images, whatever it is told on its command line:
LOADER_HIDDEN_SIZE = 4096  # its loader pads hidden states with zeros(max_len - seq, 4096)
MODEL_PATCH_GRID = (36, 48)  # its model's learned prior for the patch attention is 36x48


def token_strings(tokenizer, ids: list[int]) -> list[str]:
    """The tokenizer's token strings, the space marker removed and the newline marker made a newline."""
    return [t.replace(SPACE_MARKER, "").replace(NEWLINE_MARKER, "\n") for t in tokenizer.convert_ids_to_tokens(ids)]


class LanguageAttExporter(Exporter):
    name = FORMAT

    def __init__(self, output, dest, settings):
        super().__init__(output, dest, settings)
        self.refuse("--grid", settings.grid)  # both grids are written
        self.refuse("--unit", settings.unit)
        self.refuse("--rows", settings.rows)  # always the research's rows (trainer_rows)

    def settings_record(self) -> dict:
        record = {"layer": self.layer}
        if self.settings.require_eos:  # only when given: a DEST exported before the option keeps its record
            record["require-eos"] = True
        return record

    def rows(self) -> list[dict]:
        rows = self.done_rows()
        seen: dict[tuple[str, str], str] = {}
        for row in rows:
            key = (row["split"], export_name(row["image_id"], row["source_path"]))
            if key in seen:
                raise ConfigError(
                    f"images {seen[key]!r} and {row['image_id']!r} would both be {key[1]}.npy in split {key[0]}; "
                    "the trainer's folders cannot hold both."
                )
            seen[key] = row["image_id"]
        return rows

    def image_files(self, output, row: dict) -> dict:
        wanted = trainer_rows(row["n_tokens"], row["ended_with_eos"])

        def read(name: str) -> np.ndarray:
            array = output.layers.rows(output.group[name], row["idx"], wanted.stop, self.layer)
            return np.asarray(array)[wanted.start :]

        name = f"{row['split']}/{export_name(row['image_id'], row['source_path'])}.npy"
        return {
            f"{HIDDEN_DIRNAME}/{name}": lambda: npy_bytes(read("hidden")),
            f"{ATTENTION_DIRNAME}/{name}": lambda: npy_bytes(
                {"base": read("attn_base"), "patch": read("attn_highres")}
            ),
        }

    def fragment(self, rows: list[dict]) -> tuple[dict, list[str]]:
        from saldata.extractors.models import load_tokenizer

        tokenizer = load_tokenizer(self.output.attrs["model"], self.output.attrs["model_path"])
        token_ids = np.asarray(self.output.group["token_ids"][:])
        fragments: dict[str, dict] = {}
        for row in rows:
            wanted = trainer_rows(row["n_tokens"], row["ended_with_eos"])
            ids = [int(t) for t in token_ids[row["idx"], wanted.start : wanted.stop]]  # the EOS too, if any
            text_ids = ids[: max(0, row["n_tokens"] - wanted.start)]  # EOS is never text, special token or not
            name = export_name(row["image_id"], row["source_path"])
            split = fragments.setdefault(row["split"], {"captions": {}, "valid": {}})
            ended = bool(row["ended_with_eos"])
            split["captions"][name] = {
                "merged_token": tokenizer.decode(text_ids, skip_special_tokens=True),
                "raw_token": token_strings(tokenizer, ids),
                "ended_with_eos": ended,
            }
            valid = row["gt_status"] == GT_OK and len(ids) > 0 and (ended or not self.settings.require_eos)
            split["valid"][f"{name}.npy"] = valid
        notes = []
        if self.settings.annotations:
            from saldata.exporters.annotations import link_annotations

            notes = link_annotations(self.dest, self.output, rows)
        return fragments, notes

    def assemble(self, fragments: dict) -> tuple[dict[str, bytes], list[str]]:
        captions = {split: f["captions"] for split, f in fragments.items()}
        valid = {split: f["valid"] for split, f in fragments.items()}
        lengths = [
            len(captions[split][name[: -len(".npy")]]["raw_token"])
            for split, marks in valid.items()
            for name, ok in marks.items()
            if ok
        ]
        files = {CAPTION_FILE: json_bytes(captions), VALID_FILE: json_bytes(valid)}  # VALID_FILE last: it lists files
        n_images = sum(len(marks) for marks in valid.values())
        cut = sum(entry.get("ended_with_eos") is False for entries in captions.values() for entry in entries.values())
        return files, [*self._trainer_notes(n_images, lengths, sorted(fragments)), self._eos_note(cut, n_images)]

    def _eos_note(self, cut: int, n_images: int) -> str:
        if not cut:
            return (
                f"every image ended with EOS: its last row is the step that produced EOS (as {TRAINER_SCRIPT} assumes)"
            )
        what = (
            f"{cut} of {plural(n_images, 'image')} did not end with EOS (they ran to --max-new-tokens): their last row is a "
            "real word, not EOS (caption.json: ended_with_eos false)"
        )
        if self.settings.require_eos:
            return f"{what}; --require-eos marked them false in {VALID_FILE}"
        return (
            f"{what}; the trainer's language_parsing labels every image's last row EOS: export with --require-eos "
            f"to mark them false in {VALID_FILE}"
        )

    def _trainer_notes(self, n_images: int, lengths: list[int], splits: list[str]) -> list[str]:
        group, attrs = self.output.group, self.output.attrs
        hidden_size = group["hidden"].shape[-1]
        heads = group["attn_base"].shape[group["attn_base"].metadata.dimension_names.index("head")]
        dest = self.dest.resolve()  # the trainer runs from its own folder
        anno = dest if self.settings.annotations else "SALICON_PATH"
        notes = [
            f"{len(lengths)} of {plural(n_images, 'image')} in {self.dest} valid (splits {', '.join(splits)}; done, with "
            f"ground truth and at least one row{', ended with EOS' if self.settings.require_eos else ''}; "
            f"{VALID_FILE} marks the others false)",
        ]
        if lengths:
            notes.append(
                f"train with: python {TRAINER_SCRIPT} --language_path {dest} --anno_path {anno} "
                f"--input_dim {hidden_size} --input_head {heads} --max_len {max(lengths)}"
            )
        else:
            notes.append("nothing to train on: no image is valid (the trainer needs ground truth)")
        if hidden_size != LOADER_HIDDEN_SIZE:
            notes.append(
                f"hidden size {hidden_size}: the trainer's loader pads hidden states to {LOADER_HIDDEN_SIZE} columns "
                f"whatever --input_dim says; change that 4096 to {hidden_size} or it fails on every image shorter "
                "than --max_len"
            )
        grid = tuple(attrs["highres_grid"])
        if grid != MODEL_PATCH_GRID:
            notes.append(
                f"patch grid {grid[0]}x{grid[1]}: the trainer's model expects {MODEL_PATCH_GRID[0]}x"
                f"{MODEL_PATCH_GRID[1]} (extract with --size 640x480)"
            )
        last = attrs.get("n_decoder_layers")
        if last and self.layer != last - 1:
            notes.append(f"layer {self.layer}: the research used the model's last layer ({last - 1})")
        return notes
