"""A byte flipped in a committed chunk: every reader and command says which array, image and shard, in one line.

The store's chunks each end with a CRC-32C, so the damage is always detected; what is tested here
is what the user is told: the array, the image (idx and id), the shard and its file, and how to
repair it (``saldata verify``, then the extract), never zarr's traceback, and exit 1 from the CLI.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.errors import DamagedChunkError, StoreError

DAMAGED_IDX = 5  # the second image of shard 1 (shard size 4, six images)
DAMAGED_ID = "COCO_val2014_000000000006"
DAMAGED = ("attn_highres", "hidden")


def flip_image_chunks(out, name: str, idx: int) -> None:
    """Flip one byte inside each chunk of image ``idx`` of array ``name``; the shard file keeps its size.

    The chunks' places come from the shard's index (at the file's end: offset and length per chunk, then
    the index's own CRC-32C), so each flip lands inside a chunk, never in the index."""
    array = zarr.open_group(out / "features.zarr", mode="r")[name]
    shard, local = divmod(idx, array.shards[0])
    key = array.metadata.encode_chunk_key((shard,) + (0,) * (array.ndim - 1))
    path = out / "features.zarr" / name / key
    per_shard = tuple(s // c for s, c in zip(array.shards, array.chunks))
    data = bytearray(path.read_bytes())
    index_bytes = 16 * math.prod(per_shard)
    index = np.frombuffer(bytes(data[-index_bytes - 4 : -4]), "<u8").reshape(*per_shard, 2)
    for offset, length in index[local].reshape(-1, 2):
        data[int(offset + length // 2)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, demo_output_ray_free):
    out = tmp_path_factory.mktemp("damaged") / "demo"
    shutil.copytree(demo_output_ray_free, out)
    for name in DAMAGED:
        flip_image_chunks(out, name, DAMAGED_IDX)
    return out


def assert_names_the_damage(message: str, out) -> None:
    assert len(message.strip().splitlines()) == 1, message
    assert "array attn_highres" in message or "array hidden" in message, message
    assert f"image idx {DAMAGED_IDX} ({DAMAGED_ID})" in message, message
    assert "shard 1 (features.zarr/" in message, message
    assert "run saldata verify" in message and "rerun the extract to repair" in message, message
    assert "Traceback" not in message and "Stored and computed" not in message, message


def test_the_flip_is_seen_by_plain_zarr(damaged, demo_output_ray_free):
    """The fixture damages what it says: zarr itself fails on image 5 and reads image 4 as before."""
    group = zarr.open_group(damaged / "features.zarr", mode="r")
    reference = zarr.open_group(demo_output_ray_free / "features.zarr", mode="r")
    with pytest.raises(ValueError, match="checksum"):
        group["attn_highres"][DAMAGED_IDX, :, 1]
    np.testing.assert_array_equal(group["attn_highres"][4], reference["attn_highres"][4])


READERS = {
    "token_maps": lambda o: o.token_maps(DAMAGED_IDX),
    "word_maps": lambda o: o.word_maps(DAMAGED_IDX, layer=0),
    "hidden": lambda o: o.hidden(DAMAGED_IDX),
    "dask arrays": lambda o: o.arrays["attn_highres"].compute(),
    "a whole array, every shard at once": lambda o: o.group["hidden"][:],
    "a selection's arrays": lambda o: o.select(split="val").arrays["hidden"][4:].compute(),
    "to_xarray": lambda o: o.to_xarray()["attn_highres"].values,
}


@pytest.mark.parametrize("reader", READERS)
def test_saldata_open_readers_name_the_damaged_image_and_shard(damaged, reader):
    output = saldata.open(damaged)
    with pytest.raises(DamagedChunkError) as caught:
        READERS[reader](output)
    assert isinstance(caught.value, StoreError)  # what the CLI already prints as one line
    assert caught.value.__cause__ is None and (caught.value.__context__ is None or caught.value.__suppress_context__)
    assert_names_the_damage(str(caught.value), damaged)


def test_undamaged_images_still_read(damaged, demo_output_ray_free):
    output, reference = saldata.open(damaged), saldata.open(demo_output_ray_free)
    np.testing.assert_array_equal(output.token_maps(4), reference.token_maps(4))
    np.testing.assert_array_equal(output.arrays["attn_highres"][:4].compute(), reference.arrays["attn_highres"][:4])


def test_torch_dataset_names_the_damaged_image(damaged):
    from torch.utils.data import DataLoader

    from saldata.readers.torch_dataset import SaliencyDataset

    dataset = SaliencyDataset(damaged)
    assert dataset[4]["idx"] == 4
    with pytest.raises(DamagedChunkError) as caught:
        dataset[DAMAGED_IDX]
    assert_names_the_damage(str(caught.value), damaged)
    with pytest.raises(DamagedChunkError) as caught:
        list(DataLoader(dataset, batch_size=2))
    assert_names_the_damage(str(caught.value), damaged)


COMMANDS = {
    "export language-att": lambda out, tmp: ["export", out, tmp / "dest", "--format", "language-att"],
    "export pysaliency": lambda out, tmp: ["export", out, tmp / "dest", "--format", "pysaliency"],
    "evaluate": lambda out, tmp: ["evaluate", out],
    "show": lambda out, tmp: ["show", out, DAMAGED_ID, "-o", tmp / "figure.png"],
    "stats": lambda out, tmp: ["stats", out],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_print_one_line_and_exit_1(damaged, tmp_path, command):
    result = CliRunner().invoke(app, list(map(str, COMMANDS[command](damaged, tmp_path))))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert_names_the_damage(lines[0], damaged)


@pytest.mark.parametrize("format, folder", [("language-att", "hidden_state/val"), ("pysaliency", "maps")])
def test_a_partial_export_says_what_it_wrote(damaged, tmp_path, format, folder):
    dest = tmp_path / "dest"
    result = CliRunner().invoke(app, ["export", str(damaged), str(dest), "--format", format])
    assert result.exit_code == 1, result.output
    written = len(list((dest / folder).glob("*.npy")))
    assert 1 <= written < 6  # image 4 at least (shard 1 before the damage), never image 5
    assert f"the export stopped with {written} images written into {dest}" in result.stderr, result.stderr
    assert not (dest / folder / f"{DAMAGED_ID}.npy").exists()
