"""Model resolution: random models built offline and deterministically, clear errors otherwise."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from saldata.errors import ModelLoadError
from saldata.extractors.models import resolve_model_dir
from saldata.extractors.random_models import GRID_PINPOINTS, IMAGE_SIZE, PATCH_SIZE, random_model_dir


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_random_has_the_real_geometry(tiny_model_dir):
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(tiny_model_dir)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (IMAGE_SIZE, PATCH_SIZE) == (336, 14)
    assert config.image_grid_pinpoints == GRID_PINPOINTS
    assert config.vision_feature_layer == -2 and config.vision_feature_select_strategy == "default"
    assert processor.num_additional_image_tokens == 1
    assert "<|start_header_id|>assistant<|end_header_id|>" in processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], add_generation_prompt=True
    )


def test_tiny_random_is_deterministic(tiny_model_dir, tmp_path):

    rebuilt = random_model_dir("tiny-random", cache_dir=tmp_path)
    assert rebuilt != tiny_model_dir
    assert _digest(rebuilt) == _digest(tiny_model_dir)
    assert (rebuilt / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()


def test_second_resolution_reuses_the_cache(tiny_model_dir):
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_dir("tiny-random") == tiny_model_dir
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before


def test_local_directory_loads_through_the_same_path(tiny_model_dir):
    assert resolve_model_dir(str(tiny_model_dir)) == tiny_model_dir.resolve()


# Run in a fresh interpreter: huggingface_hub reads HF_HUB_OFFLINE once, when it is imported, so
# setting it in this (long imported) test process would change nothing. Every socket connection
# and name lookup is refused and recorded, so the offline path is told apart from a network
# failure (this machine may have no network either way).
OFFLINE_PROBE = """
import json, socket, sys

attempts = []

def refuse(kind):
    def blocked(*args, **kwargs):
        attempts.append(kind + " " + repr(args[1:] if kind == "connect" else args)[:200])
        raise OSError("network use in an offline test: " + kind)
    return blocked

socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect")
socket.getaddrinfo = refuse("getaddrinfo")

import huggingface_hub.constants
from saldata.errors import ModelLoadError
from saldata.extractors.models import resolve_model_dir

report = {"offline": huggingface_hub.constants.HF_HUB_OFFLINE}
try:
    resolve_model_dir(sys.argv[1])
    report["error"] = None
except ModelLoadError as exc:
    report["error"] = str(exc)
    report["causes"] = []
    cause = exc.__cause__
    while cause is not None:
        report["causes"].append([type(cause).__name__, str(cause)])
        cause = cause.__cause__ or cause.__context__
report["attempts"] = list(attempts)
try:  # the guard itself works: a connection is refused and recorded
    socket.create_connection(("127.0.0.1", 9), timeout=1)
except OSError:
    pass
report["guard_recorded"] = len(attempts) > len(report["attempts"])
print(json.dumps(report))
"""


def test_unreachable_hub_id_offline_fails_without_touching_the_network(tmp_path):
    hub_id = "llava-hf/no-such-model-for-saldata-tests"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, hub_id], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["offline"] is True
    assert report["guard_recorded"], "the socket guard did not see a connection: it proves nothing"
    assert report["attempts"] == [], f"offline resolution used the network: {report['attempts']}"
    message = report["error"]
    assert message is not None, "an unknown hub id resolved offline"
    assert hub_id in message and "tiny-random" in message and "local directory" in message
    # It failed because lookups are disabled, not because a lookup failed.
    assert report["causes"][0][0] == "LocalEntryNotFoundError", report["causes"]
    assert "outgoing traffic has been disabled" in report["causes"][0][1], report["causes"]


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        resolve_model_dir(str(tmp_path))
