"""Every command the README shows runs as shown, and prints nothing on stderr but saldata's own lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

# What `saldata extract` itself writes on stderr: its plan line and the bar. Its summary is its
# report, on stdout (#26). Anything else there (a library's warning, progress bar or log line) is noise.
EXTRACT_LINES = [
    r"\d+ images? in \d+ shards?; model \S+ \(/\S+\)",
    r"extract .*",
]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def shell_commands() -> list[str]:
    """The README's `saldata ...` command lines (continuations joined), in order."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("&&")[-1].split("  #")[0].strip()
            if line.startswith("saldata "):
                commands.append(line)
    return commands


def needs_real_data(command: str) -> bool:
    # The SALICON example needs the dataset on disk (the objects examples are console blocks, with their output).
    return "--dataset salicon" in command


README_BUCKET = "my-bucket"  # the object-storage examples' bucket, in the s3_server fixture's local S3


@pytest.mark.slow
def test_every_readme_command_runs_and_keeps_stderr_clean(tmp_path, s3_server):
    s3_server.new_bucket(README_BUCKET)
    commands = [c for c in shell_commands() if not needs_real_data(c)]
    assert commands[0].startswith("saldata extract --dataset demo"), "the quick start must come first"
    assert len(commands) >= 7, commands
    # A fresh cache: the first run builds the random model, which must not print a bar either.
    env = {**os.environ, "SALDATA_CACHE": str(tmp_path / "cache"), "COLUMNS": "100"}
    for command in commands:
        args = command.split(" ", 1)[1]
        proc = subprocess.run(
            f"{sys.executable} -m saldata.cli.main {args}",
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
        noise = [line for line in proc.stderr.splitlines() if not _ours(command, line)]
        assert not noise, f"{command} printed on stderr:\n" + "\n".join(noise[:20])
    for number, block in enumerate(readme_blocks("python")):
        proc = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"python block {number}:\n{block}\n{proc.stderr[-2000:]}"
        assert proc.stderr == "", f"python block {number} printed on stderr:\n{proc.stderr[-2000:]}"


def _ours(command: str, line: str) -> bool:
    if command.startswith("saldata extract"):
        return any(re.fullmatch(pattern, line) for pattern in EXTRACT_LINES)
    return False  # every other command prints its output on stdout and nothing on stderr


def test_the_quick_start_installs_no_test_tools_and_writes_outside_the_clone():
    # It used to be `pip install -e ".[dev]" && saldata extract ... --out runs/demo`: moto, flask,
    # docker and ruff for every user, and the outputs written into the repository's root.
    quick = readme_blocks("bash")[0]
    installs = [line for line in quick.splitlines() if "pip install" in line]
    assert installs and not any("[dev]" in line for line in installs), installs
    work = re.search(r"^mkdir -p (~/\S+) && cd \1$", quick, flags=re.M)
    assert work and work.start() < quick.index("saldata extract"), quick
    assert any('pip install -e ".[dev]" && python -m pytest -q' in block for block in readme_blocks("bash"))
