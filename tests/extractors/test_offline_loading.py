"""Air-gapped nodes (issue #23): models load, and an extraction runs, with no network at all.

Every process these tests start (the probe, the CLI, Ray's raylet, workers and actors) runs with
``tests/no_network`` first on PYTHONPATH and ``SALDATA_NO_NETWORK`` set, so its
``sitecustomize`` refuses every connection that would leave the machine and every lookup of a
name that is not this machine's, and logs each refusal. The tests read that log: a refusal that
a library caught and hid (telemetry, "is this a Mistral model?" lookups, a kernel fetch that
falls back) still fails them. ``kernels`` is installed, so transformers >= 5.2x turns its Hub
kernels on by default; the control in the load test shows that it does, here.

Nothing here mocks the loader: the probes call saldata's own resolve/load functions and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zarr

from tests.helpers import run_cli

GUARD_DIR = Path(__file__).resolve().parents[1] / "no_network"
LOG_VARIABLE = "SALDATA_NO_NETWORK"
# Ray's dashboard process asks the cloud metadata endpoints which cloud it runs on (169.254.169.254,
# metadata.google.internal) for its usage statistics, whatever RAY_USAGE_STATS_ENABLED says, and
# ignores the failure. That is Ray's, not saldata's, and the only network use these runs allow.
RAY_USAGE_STATS = "/ray/_common/usage/usage_lib.py"
HUB_ID = "saldata-tests/tiny-random"  # the tiny model, saved into a temporary HF cache under this id
PUBLIC_V4, PUBLIC_V6 = ("1.1.1.1", 443), ("2606:4700:4700::1111", 443)


def no_network_env(log: Path, hf_offline: str = "0", **extra: str) -> dict[str, str]:
    """This process's environment with the guard armed (logging to ``log``) for every child.

    HF_HUB_OFFLINE is "0" unless asked: a local directory must load without the Hub's offline
    switch. Nothing tells transformers to keep its Hub kernels off but saldata itself."""
    env = {**os.environ, **extra, LOG_VARIABLE: str(log), "HF_HUB_OFFLINE": hf_offline}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH")) if p)
    for name in ("USE_HUB_KERNELS", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        env.pop(name, None)
    return env


def logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def armed(log: Path) -> list[str]:
    """The command lines of the processes that ran with the guard."""
    return [e["command"] for e in logged(log) if e["kind"] == "armed"]


def refusals(log: Path, allow_ray_usage_stats: bool = False) -> list[dict]:
    """The guard's refusals: one per connection or lookup refused, with the process and frames."""
    entries = [e for e in logged(log) if e["kind"] != "armed"]
    if allow_ray_usage_stats:
        entries = [e for e in entries if not any(RAY_USAGE_STATS in frame for frame in e["stack"])]
    return entries


def shown(entries: list[dict]) -> str:
    return "\n".join(
        f"pid {e['pid']} {e['command'][:120]}: {e['kind']} {e['target']}\n  " + "\n  ".join(e["stack"][-6:])
        for e in entries
    )


def run_probe(code: str, env: dict[str, str], *args: str, timeout: int = 300) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the guard itself: without these, every test below could pass with the network wide open ---

GUARD_PROBE = r"""
import errno, json, socket, sys, threading

report = {"guard": getattr(sys.modules.get("sitecustomize"), "__file__", None), "patched": "connect" in vars(socket.socket)}
report["refused"] = refused = {}
v4, v6 = (sys.argv[1], int(sys.argv[2])), (sys.argv[3], int(sys.argv[4]))

def attempt(what, call):
    try:
        call()
        refused[what] = None
    except Exception as exc:  # OSError from sockets; the Hub client wraps it in its own ConnectError
        refused[what] = str(exc)

try:
    ipv6 = socket.socket(socket.AF_INET6)
except OSError:  # no IPv6 in this kernel: nothing to refuse
    ipv6 = None
attempt("tcp v4", lambda: socket.create_connection(v4, timeout=2).close())
if ipv6 is not None:
    attempt("tcp v6", lambda: ipv6.connect(v6))
attempt("udp v4", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(("8.8.8.8", 53)))
attempt("lookup", lambda: socket.getaddrinfo("huggingface.co", 443))
attempt("hub api", lambda: __import__("huggingface_hub").HfApi().model_info("gpt2"))
report["connect_ex"] = socket.socket().connect_ex((v4[0], 80)) == errno.ENETUNREACH

# What stays allowed: loopback (Ray's gRPC) and unix sockets.
server = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
socket.create_connection(("localhost", server.getsockname()[1]), timeout=5).close()
left, right = socket.socketpair(socket.AF_UNIX)
left.sendall(b"ok")
report["loopback"], report["unix"] = True, right.recv(2) == b"ok"
print(json.dumps(report))
"""


def test_guard_refuses_and_logs_every_connection_that_leaves_the_machine(tmp_path):
    log = tmp_path / "refusals.jsonl"
    args = [PUBLIC_V4[0], str(PUBLIC_V4[1]), PUBLIC_V6[0], str(PUBLIC_V6[1])]
    report = run_probe(GUARD_PROBE, no_network_env(log), *args)
    assert report["guard"] == str(GUARD_DIR / "sitecustomize.py") and report["patched"]
    for what, message in report["refused"].items():
        assert message is not None, f"the guard let {what} through"
        assert "no network in this test" in message, (what, message)  # refused by the guard, not by this machine
    assert report["connect_ex"] and report["loopback"] and report["unix"], report
    entries = refusals(log)
    targets = [(e["kind"], e["target"]) for e in entries]
    assert ("connect", repr(PUBLIC_V4)) in targets and ("getaddrinfo", "'huggingface.co'") in targets, targets
    assert targets.count(("connect", repr((PUBLIC_V4[0], 80)))) == 1, targets  # connect_ex
    assert ("tcp v6" not in report["refused"]) or any(PUBLIC_V6[0] in target for _, target in targets), targets
    assert any("huggingface_hub" in frame for e in entries for frame in e["stack"]), (
        "the Hub client's call was not seen"
    )
    # Unarmed, the module changes nothing.
    env = no_network_env(log)
    env.pop(LOG_VARIABLE)
    code = "import json, socket, sys; print(json.dumps([sys.modules['sitecustomize'].__file__, 'connect' in vars(socket.socket)]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(proc.stdout) == [str(GUARD_DIR / "sitecustomize.py"), False], proc.stderr


RAY_GUARD_PROBE = r"""
import json, os, socket, sys
import ray

def attempt():
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=2).close()
        return None
    except OSError as exc:
        return str(exc)

def where():
    return {"pid": os.getpid(), "guard": getattr(sys.modules.get("sitecustomize"), "__file__", None), "refused": attempt()}

@ray.remote
def task():
    return where()

@ray.remote
class Actor:
    def probe(self):
        return where()

ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
try:
    print(json.dumps({"driver": where(), "task": ray.get(task.remote()), "actor": ray.get(Actor.remote().probe.remote())}))
finally:
    ray.shutdown()
"""


@pytest.mark.slow
def test_guard_reaches_ray_tasks_and_actors(tmp_path):
    log = tmp_path / "refusals.jsonl"
    report = run_probe(RAY_GUARD_PROBE, no_network_env(log, RAY_ENABLE_AUTO_CONNECT="0"))
    for where in ("driver", "task", "actor"):
        assert report[where]["guard"] == str(GUARD_DIR / "sitecustomize.py"), (where, report[where])
        assert "no network in this test" in (report[where]["refused"] or ""), (where, report[where])
    assert len({report[where]["pid"] for where in ("driver", "task", "actor")}) == 3
    refused_in = {e["pid"] for e in refusals(log) if e["target"] == repr(PUBLIC_V4)}
    assert refused_in == {report[where]["pid"] for where in ("driver", "task", "actor")}, shown(refusals(log))


# --- loading: tiny and mid random models, and a hub id from the HF cache ---

LOAD_PROBE = r"""
import json, os, sys

import numpy as np
import transformers
from transformers.utils import is_kernels_available

from saldata.extractors.capture import capture_implementation
from saldata.extractors.image_inputs import image_processor
from saldata.extractors.models import ModelSettings, load_config, load_model, load_tokenizer, resolve_model_dir

names = sys.argv[1:]
report = {"kernels": is_kernels_available(), "loads": []}
# The control: what transformers does when not told otherwise (saldata's first load sets
# USE_HUB_KERNELS=NO in this process, so this comes first). On CPU it fetches nothing.
plain = transformers.LlavaNextForConditionalGeneration.from_pretrained(
    resolve_model_dir(names[0]), device_map="cpu", local_files_only=True
)
report["plain_use_kernels"] = plain.use_kernels
del plain
image = np.random.default_rng(0).integers(0, 256, (336, 336, 3), dtype=np.uint8)
for name in names:
    path = resolve_model_dir(name)
    model, processor = load_model(ModelSettings(name), path, capture_implementation("sdpa"))
    new_tokens = None
    if name != "mid-random":  # generating proves the forward path once; mid is the same architecture, wider
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}], add_generation_prompt=True
        )
        inputs = processor(images=[image], text=[prompt], return_tensors="pt").to(model.device)
        generated = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
        new_tokens = int(generated.shape[1] - inputs["input_ids"].shape[1])
    report["loads"].append({
        "model": name,
        "path": str(path),
        "use_kernels": model.use_kernels,
        "new_tokens": new_tokens,
        "text_layers": load_config(path).text_config.num_hidden_layers,
        "image_processor": type(image_processor(path)).__name__,
        "tokenizer": type(load_tokenizer(name, os.path.join(str(path), "gone"))).__name__,
    })
report["USE_HUB_KERNELS"] = os.environ.get("USE_HUB_KERNELS")
print(json.dumps(report))
"""


def test_tiny_and_mid_models_build_and_load_without_network_or_hub_kernels(tmp_path):
    """Built from scratch (a fresh cache) and loaded with every socket refused; the model
    transformers returns reports no hub kernels, where its default (the control) reports them on."""
    log = tmp_path / "refusals.jsonl"
    env = no_network_env(log, SALDATA_CACHE=str(tmp_path / "cache"))
    report = run_probe(LOAD_PROBE, env, "tiny-random", "mid-random")
    assert report["kernels"], "the kernels package must be installed (dev extra): this test is about its default"
    assert report["plain_use_kernels"] is True, (
        "transformers' default no longer turns hub kernels on: the control is void"
    )
    loads = {load["model"]: load for load in report["loads"]}
    assert set(loads) == {"tiny-random", "mid-random"}
    for name, load in loads.items():
        assert load["use_kernels"] is False, f"{name} loaded with hub kernels"
        assert load["tokenizer"] and load["image_processor"], load
        assert load["path"].startswith(str(tmp_path / "cache")), load
    assert (loads["tiny-random"]["text_layers"], loads["mid-random"]["text_layers"]) == (2, 8)
    assert loads["tiny-random"]["new_tokens"] == 3
    assert report["USE_HUB_KERNELS"] == "NO"
    assert refusals(log) == [], "loading used the network:\n" + shown(refusals(log))


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def save_to_hf_cache(model_dir: Path, hub_cache: Path, repo_id: str) -> Path:
    """Lay ``model_dir`` out in ``hub_cache`` as the Hub client does for ``repo_id`` at main:
    blobs named by their etag (sha256 for LFS files, the git blob id for the rest), a snapshot
    of relative symlinks to them, and refs/main naming the snapshot's commit."""
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in model_dir.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in files:
        data = path.read_bytes()
        etag = hashlib.sha256(data).hexdigest() if path.suffix == ".safetensors" else git_blob_id(data)
        (repo / "blobs" / etag).write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", etag))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory, tiny_model_dir):
    """An HF_HOME whose hub cache holds the tiny model as HUB_ID, checked by huggingface_hub's own scan."""
    from huggingface_hub import scan_cache_dir

    home = tmp_path_factory.mktemp("hf-home")
    snapshot = save_to_hf_cache(tiny_model_dir, home / "hub", HUB_ID)
    info = scan_cache_dir(home / "hub")
    assert info.warnings == [], info.warnings
    (repo,) = info.repos
    (revision,) = repo.revisions
    assert (repo.repo_id, revision.snapshot_path, revision.refs) == (HUB_ID, snapshot, frozenset({"main"}))
    assert {f.file_name for f in revision.files} == {p.name for p in tiny_model_dir.iterdir() if p.is_file()}
    return home


def hub_env(log: Path, hf_home: Path) -> dict[str, str]:
    env = no_network_env(log, hf_offline="1", HF_HOME=str(hf_home))
    env.pop("HF_HUB_CACHE", None)  # the cache is HF_HOME/hub
    return env


MISSING_PROBE = r"""
import json, sys
from saldata.errors import ModelLoadError
from saldata.extractors.models import resolve_model_dir
try:
    resolve_model_dir(sys.argv[1])
    print(json.dumps({"error": None}))
except ModelLoadError as exc:
    print(json.dumps({"error": str(exc), "cause": type(exc.__cause__).__name__}))
"""


def test_hub_id_in_the_hf_cache_loads_with_hf_hub_offline(tmp_path, hf_home):
    log = tmp_path / "refusals.jsonl"
    report = run_probe(LOAD_PROBE, hub_env(log, hf_home), HUB_ID)
    (load,) = report["loads"]
    repo = hf_home / "hub" / "models--saldata-tests--tiny-random"
    assert load["path"] == str(repo / "snapshots" / (repo / "refs" / "main").read_text())
    assert load["use_kernels"] is False and load["new_tokens"] == 3 and load["text_layers"] == 2
    assert refusals(log) == [], "loading from the HF cache used the network:\n" + shown(refusals(log))
    # An id the cache does not hold: one line that says what to do, and still no network.
    missing = "saldata-tests/not-in-the-cache"
    report = run_probe(MISSING_PROBE, hub_env(log, hf_home), missing)
    message = report["error"]
    assert message is not None and "\n" not in message, message
    assert missing in message and "local directory" in message and "tiny-random" in message, message
    assert report["cause"] == "LocalEntryNotFoundError", report
    assert refusals(log) == [], shown(refusals(log))


# --- a short extraction through Ray (the CLI, which starts its own Ray) ---


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-random", "mid-random", HUB_ID])
def test_extraction_through_ray_runs_without_network(tmp_path, demo_root, model, request):
    log = tmp_path / "refusals.jsonl"
    env = hub_env(log, request.getfixturevalue("hf_home")) if model == HUB_ID else no_network_env(log)
    out = tmp_path / "out"
    # Two images, four tokens, 336x336 (half the prompt of 640x480: mid-random stays quick on two cores).
    args = ["extract", "--dataset", "demo", "--model", model, "--out", out, "--limit", "2", "--max-new-tokens", "4"]
    args += ["--size", "336x336"]
    proc = run_cli(args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    attrs = zarr.open_group(out / "features.zarr", mode="r").attrs
    assert attrs["hub_kernels"] is False and (attrs["model"], attrs["n_images"]) == (model, 2)
    if model == HUB_ID:  # found in the HF cache
        assert Path(attrs["model_path"]).parent.parent.name == "models--saldata-tests--tiny-random"
    images = pq.read_table(out / "catalog" / "images").to_pydict()
    assert images["status"] == ["done", "done"], images["error"]
    assert refusals(log, allow_ray_usage_stats=True) == [], "the extraction used the network:\n" + shown(
        refusals(log, allow_ray_usage_stats=True)
    )
    # The guard was on in the CLI and in Ray's workers (the model actor is one): the run proves something.
    commands = armed(log)
    assert any("saldata.cli.main extract" in c for c in commands), commands
    assert any("default_worker.py" in c for c in commands), commands
