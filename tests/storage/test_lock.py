"""One live run per output; a lock left by a dead run is taken over; a lock cannot be stolen.

Everything here runs on real files; the owners that die, hang or race are real processes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import saldata
from saldata.errors import StoreError
from saldata.storage.lock import LOCK_FILE, OutputLock, is_stale, read_lock

pytestmark = pytest.mark.timeout(60)

SRC = str(Path(saldata.__file__).resolve().parents[1])  # children import the saldata under test

# A child that holds OutputLock(out, run_id, **kwargs) and answers one JSON line per command.
HOLDER = """
import json, sys
from saldata.storage.lock import OutputLock
lock = OutputLock(sys.argv[1], sys.argv[2], **json.loads(sys.argv[3]))
with lock:
    print(json.dumps("held"), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "exit":
            break
        if command == "lost":
            print(json.dumps(getattr(lock, "lost", None)), flush=True)
        if command == "check":
            try:
                lock.check()
                print(json.dumps("ok"), flush=True)
            except Exception as e:
                print(json.dumps(f"{type(e).__name__}: {e}"), flush=True)
print(json.dumps("released"), flush=True)
"""

# A child that takes part in ROUNDS races: it spins until go-R appears (shortly after ready-R), tries to
# take the lock, answers, and, if it won, holds the lock until done-R appears.
RACER = """
import json, os, sys, time
from saldata.errors import StoreError
from saldata.storage.lock import OutputLock
out, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(json.dumps("ready"), flush=True)
for r in range(rounds):
    ready, go, done = (os.path.join(out, f"{step}-{r}") for step in ("ready", "go", "done"))
    while not os.path.exists(ready):
        time.sleep(0.001)
    while not os.path.exists(go):
        pass  # busy, for the few milliseconds before GO: all racers leave within microseconds of each other
    try:
        with OutputLock(out, f"{name}-{r}", stale_after=30):
            print(json.dumps(["won", f"{name}-{r}"]), flush=True)
            while not os.path.exists(done):
                time.sleep(0.001)
        print(json.dumps("released"), flush=True)
    except StoreError as e:
        print(json.dumps(["refused", str(e)]), flush=True)
"""


def _python(code: str, *args, stdin=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        env={**os.environ, "PYTHONPATH": SRC},
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Holder:
    """A real process holding the lock of ``out`` until told to exit."""

    def __init__(self, out: Path, run_id: str, **kwargs):
        self.proc = _python(HOLDER, out, run_id, json.dumps(kwargs))
        assert self.ask(None) == "held", self.stderr()

    def ask(self, command: str | None):
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"holder died: {self.stderr()}"
        return json.loads(line)

    def stderr(self) -> str:
        self.proc.kill()
        return self.proc.communicate()[1][-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def holders():
    started: list[Holder] = []

    def start(out, run_id, **kwargs) -> Holder:
        started.append(Holder(out, run_id, **kwargs))
        return started[-1]

    yield start
    for holder in started:
        holder.close()


@pytest.fixture
def fast_dir(tmp_path):
    """A directory on tmpfs where there is one: link, rename and O_EXCL behave as on disk, but fsync is free,
    so a race test fits many more rounds in its time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="saldata-lock-test-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _wait(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _backdate(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _leftovers(out: Path) -> list[str]:
    """Temp and aside files the lock may use; none may outlive an acquisition or a release."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith(LOCK_FILE) and p.name != LOCK_FILE)


# --- one live run; dead runs are taken over -------------------------------------------------------


def test_second_run_on_a_live_output_is_refused(tmp_path, holders):
    first = holders(tmp_path, "first")
    with pytest.raises(StoreError) as err, OutputLock(tmp_path, "second"):
        pass
    assert "in use by run first" in str(err.value) and str(first.proc.pid) in str(err.value)
    assert first.ask("check") == "ok"  # the refused run left the holder's lock alone
    assert first.ask("exit") == "released"
    assert not (tmp_path / LOCK_FILE).exists() and _leftovers(tmp_path) == []


def test_lock_of_a_run_killed_with_sigkill_is_taken_over(tmp_path, holders):
    first = holders(tmp_path, "first")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    assert read_lock(tmp_path)["run_id"] == "first"  # left behind
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "first"
        assert read_lock(tmp_path)["run_id"] == "new"
        assert _leftovers(tmp_path) == []


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "run_id": "old"}))
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "old"
        assert json.loads((tmp_path / LOCK_FILE).read_text())["run_id"] == "new"


def test_lock_from_another_host_goes_stale_when_its_heartbeat_stops(tmp_path):
    path = tmp_path / LOCK_FILE
    path.write_text(json.dumps({"host": "other-node", "pid": 1, "run_id": "remote"}))
    with pytest.raises(StoreError), OutputLock(tmp_path, "new"):
        pass
    _backdate(path, 3600)
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "remote"


def test_the_lock_never_exists_without_its_owner(tmp_path):
    """A reader polling beside a run that takes and releases the lock never sees an empty or partial file."""
    churn = _python(
        "import sys\nfrom saldata.storage.lock import OutputLock\n"
        "for i in range(150):\n    with OutputLock(sys.argv[1], f'run-{i}'):\n        pass\n",
        tmp_path,
        stdin=subprocess.DEVNULL,
    )
    path, seen, partial = tmp_path / LOCK_FILE, 0, []
    while churn.poll() is None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        seen += 1
        try:
            complete = "run_id" in json.loads(raw)
        except ValueError:
            complete = False
        if not complete:
            partial.append(raw)
    assert churn.communicate()[1] == "" and churn.returncode == 0
    assert seen > 0, "the reader never caught the lock; the test proved nothing"
    assert partial == [], f"{len(partial)} of {seen} reads found a lock without its owner: {partial[:3]}"


# --- defect (a): a deleted lock --------------------------------------------------------------------


def test_a_run_whose_lock_is_deleted_stops_and_spares_the_next_runs_lock(tmp_path, holders):
    first = holders(tmp_path, "first")
    (tmp_path / LOCK_FILE).unlink()  # a user "cleaning up", or a wrong takeover
    with OutputLock(tmp_path, "second") as second:
        mine = (tmp_path / LOCK_FILE).read_bytes()
        answer = first.ask("check")
        assert first.ask("exit") == "released"
        # The first run, finishing, must not delete the second's lock.
        assert (tmp_path / LOCK_FILE).read_bytes() == mine
        second.check()
        # ...and it was told to stop writing, in one line naming the file and who holds it now.
        assert answer.startswith("StoreError: ") and "\n" not in answer, answer
        assert str(tmp_path / LOCK_FILE) in answer and "run second" in answer and "rerun" in answer.lower()
    assert not (tmp_path / LOCK_FILE).exists()


def test_check_itself_reads_the_lock_and_sees_it_removed(tmp_path):
    with OutputLock(tmp_path, "me") as lock:  # default heartbeat: seconds away, so check() must look itself
        lock.check()
        assert not lock.lost
        (tmp_path / LOCK_FILE).unlink()
        with pytest.raises(StoreError) as err:
            lock.check()
        message = str(err.value)
        assert "\n" not in message and str(tmp_path / LOCK_FILE) in message and "removed" in message
        assert lock.lost
        (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "h", "pid": 1, "run_id": "me"}))
        with pytest.raises(StoreError):  # once lost, always lost: something else may have written meanwhile
            lock.check()
    assert (tmp_path / LOCK_FILE).exists()  # not ours any more: left in place


def test_heartbeat_marks_a_deleted_lock_lost_and_never_recreates_it(tmp_path):
    path = tmp_path / LOCK_FILE
    with OutputLock(tmp_path, "me", stale_after=2, heartbeat_s=0.05) as lock:
        before = path.stat().st_mtime_ns
        _wait(lambda: path.stat().st_mtime_ns != before, what="a heartbeat")
        path.unlink()
        _wait(lambda: lock.lost, what="the heartbeat to notice")
        time.sleep(0.2)  # several more beats
        assert not path.exists()
        with pytest.raises(StoreError, match="removed"):
            lock.check()
    assert not path.exists()


# --- replaced by another owner; release only by the owner ----------------------------------------


def _replace_with(path: Path, record: dict) -> bytes:
    """Put another owner's record at ``path`` the way a takeover would (a new file, moved into place)."""
    tmp = path.with_name("replacement")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return path.read_bytes()


INTRUDER = {"host": "other-node", "pid": 4242, "run_id": "intruder", "started": 0.0, "token": "t" * 32}


def test_check_and_heartbeat_see_a_replaced_lock_and_leave_it_alone(tmp_path):
    path = tmp_path / LOCK_FILE
    with OutputLock(tmp_path, "me", stale_after=2, heartbeat_s=0.05) as lock:
        theirs = _replace_with(path, INTRUDER)
        _backdate(path, 100)
        mtime = path.stat().st_mtime_ns
        _wait(lambda: lock.lost, what="the heartbeat to notice")
        time.sleep(0.2)
        assert path.stat().st_mtime_ns == mtime  # the heartbeat does not keep another run's lock alive
        with pytest.raises(StoreError) as err:
            lock.check()
        message = str(err.value)
        assert "\n" not in message and "taken by run intruder" in message and str(path) in message
    assert path.read_bytes() == theirs  # released only by its owner


def test_release_deletes_only_the_owners_lock(tmp_path):
    path = tmp_path / LOCK_FILE
    with OutputLock(tmp_path, "me"):  # heartbeat seconds away: only the release looks
        theirs = _replace_with(path, INTRUDER)
    assert path.read_bytes() == theirs
    with OutputLock(tmp_path / "own", "me"):
        pass
    assert not (tmp_path / "own" / LOCK_FILE).exists()


def test_a_stopped_owner_is_taken_over_and_stops_writing_when_it_resumes(tmp_path, holders):
    first = holders(tmp_path, "first", stale_after=1.0, heartbeat_s=0.05)
    os.kill(first.proc.pid, signal.SIGSTOP)  # hung (or suspended) while holding the lock; its pid stays alive
    try:
        _wait(lambda: is_stale(read_lock(tmp_path), 1.0), what="the stopped owner's heartbeat to age")
        with OutputLock(tmp_path, "second", stale_after=1.0, heartbeat_s=0.05) as second:
            assert second.took_over["run_id"] == "first"
            mine = (tmp_path / LOCK_FILE).read_bytes()
            os.kill(first.proc.pid, signal.SIGCONT)
            _wait(lambda: first.ask("lost") is True, what="the resumed owner to see it lost the lock")
            answer = first.ask("check")
            assert answer.startswith("StoreError: ") and "taken by run second" in answer, answer
            assert first.ask("exit") == "released"
            assert (tmp_path / LOCK_FILE).read_bytes() == mine
            time.sleep(0.2)
            second.check()
            assert not second.lost
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)


# --- defect (b): unreadable, empty, half-written locks ----------------------------------------------


@pytest.mark.parametrize("content", [b"", b'{"host": "node-1", "pi'], ids=["empty", "half-written"])
def test_an_unreadable_lock_is_in_use_until_older_than_stale_after(tmp_path, content):
    path = tmp_path / LOCK_FILE
    path.write_bytes(content)  # a run between creating the file and writing its owner, or one that died there
    with pytest.raises(StoreError) as err, OutputLock(tmp_path, "new", stale_after=2):
        pass
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "delete" in message
    assert path.read_bytes() == content
    _backdate(path, 10)
    with OutputLock(tmp_path, "new", stale_after=2) as lock:
        assert lock.took_over["corrupt"] is True
        assert read_lock(tmp_path)["run_id"] == "new"
    assert _leftovers(tmp_path) == []


# --- defect (c): corrupt locks give one line, never a traceback ------------------------------------

CORRUPT = {
    "pid-not-a-number": b'{"host": "h", "pid": "abc", "run_id": "r"}',
    "pid-only": b'{"pid": "abc"}',
    "json-list": b"[1, 2, 3]",
    "json-null": b"null",
    "garbage-bytes": b"\x00\xff\xfe\x80 garbage",
    "pid-out-of-range": b'{"host": "h", "pid": 99999999999999999999, "run_id": "r"}',
    "pid-zero": json.dumps({"host": socket.gethostname(), "pid": 0, "run_id": "r"}).encode(),
    "run-id-missing": json.dumps({"host": socket.gethostname(), "pid": 1}).encode(),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_lock_gives_a_one_line_store_error_from_every_reader(tmp_path, content):
    path = tmp_path / LOCK_FILE
    path.write_bytes(content)
    info = read_lock(tmp_path)
    assert info["corrupt"] is True
    assert "\n" not in info["error"] and str(path) in info["error"] and "delete" in info["error"]
    assert is_stale(info, 60) is False  # young: may be a run starting
    running = info if info and not is_stale(info) else None  # what `saldata status` does
    assert running is info
    with pytest.raises(StoreError) as err, OutputLock(tmp_path, "new", stale_after=60):
        pass
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    _backdate(path, 120)
    assert is_stale(read_lock(tmp_path), 60) is True
    with OutputLock(tmp_path, "new", stale_after=60) as lock:
        assert lock.took_over["corrupt"] is True


def test_is_stale_never_raises_on_a_record_it_cannot_use(tmp_path):
    here = socket.gethostname()
    for record in ({"host": here, "pid": "abc"}, {"host": here, "pid": None}, {"host": here, "pid": [1]}):
        assert is_stale({**record, "heartbeat_age_s": 1.0}, 60) is False
        assert is_stale({**record, "heartbeat_age_s": 100.0}, 60) is True
    with pytest.raises(StoreError):  # not from read_lock at all: a one-line error, not a KeyError
        is_stale({"host": here, "pid": 1}, 60)


# --- takeover races ------------------------------------------------------------------------------


@pytest.mark.parametrize("stale", ["dead-pid", "old-corrupt"])
def test_racing_takeovers_of_a_stale_lock_have_exactly_one_winner(fast_dir, stale):
    path, rounds = fast_dir / LOCK_FILE, 40
    racers = [_python(RACER, fast_dir, f"racer{i}", rounds) for i in range(3)]
    dead_pid = _dead_pid()

    def answer(racer):
        line = racer.stdout.readline()
        assert line, racer.communicate()[1][-3000:]
        return json.loads(line)

    try:
        assert [answer(r) for r in racers] == ["ready"] * len(racers)
        for round_ in range(rounds):
            if stale == "dead-pid":
                path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid, "run_id": "dead"}))
            else:
                path.write_bytes(b'{"host": "node-1", "pi')
                _backdate(path, 3600)
            (fast_dir / f"ready-{round_}").touch()
            time.sleep(0.005)
            (fast_dir / f"go-{round_}").touch()
            answers = {racer: answer(racer) for racer in racers}
            winners = [r for r, a in answers.items() if a[0] == "won"]
            assert len(winners) == 1, f"round {round_}: {list(answers.values())}"
            name = answers[winners[0]][1]
            assert read_lock(fast_dir)["run_id"] == name
            for kind, text in answers.values():
                assert kind == "won" or f"in use by run {name}" in text, text
            (fast_dir / f"done-{round_}").touch()
            assert answer(winners[0]) == "released"
            assert not path.exists() and _leftovers(fast_dir) == []
    finally:
        for racer in racers:
            racer.kill()
            racer.communicate()


def _stale_lock(out: Path) -> bytes:
    (out / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "run_id": "dead"}))
    return (out / LOCK_FILE).read_bytes()


def test_a_takeover_in_progress_is_left_to_finish(tmp_path):
    """Takers go one at a time: while another live process holds the takeover guard, the stale lock is not touched."""
    stale = _stale_lock(tmp_path)
    guard = tmp_path / f"{LOCK_FILE}.takeover"
    guard.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "run_id": "taker", "token": "x"}))
    with pytest.raises(StoreError) as err, OutputLock(tmp_path, "new"):
        pass
    assert "\n" not in str(err.value) and str(guard) in str(err.value)
    assert (tmp_path / LOCK_FILE).read_bytes() == stale


def test_a_guard_left_by_a_dead_taker_does_not_block_takeovers(tmp_path):
    _stale_lock(tmp_path)
    guard = tmp_path / f"{LOCK_FILE}.takeover"
    guard.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "run_id": "taker", "token": "x"}))
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "dead"
        assert _leftovers(tmp_path) == []


def test_without_hard_links_the_lock_is_created_exclusively(tmp_path, monkeypatch):
    """Filesystems without hard links (FAT, some FUSE mounts) refuse link(); os.link stands in for one here."""

    def no_hard_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    with OutputLock(tmp_path, "first") as lock:
        assert read_lock(tmp_path)["token"] == lock.token
        with pytest.raises(StoreError, match="in use by run first"), OutputLock(tmp_path, "second"):
            pass
        lock.check()
    assert not (tmp_path / LOCK_FILE).exists() and _leftovers(tmp_path) == []
    _stale_lock(tmp_path)
    with OutputLock(tmp_path, "new") as lock:
        assert lock.took_over["run_id"] == "dead"
        assert _leftovers(tmp_path) == []


# --- settings ------------------------------------------------------------------------------------


def test_a_heartbeat_no_faster_than_staleness_is_refused(tmp_path):
    with pytest.raises(ValueError):
        OutputLock(tmp_path, "me", stale_after=1.0, heartbeat_s=1.0)


def _chattr(flag: str, path: Path) -> bool:
    return (
        shutil.which("chattr") is not None
        and subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    )


def test_a_stale_lock_that_cannot_be_removed_is_one_line(tmp_path):
    """An immutable lock (or one in a folder this user may not change) cannot be taken over: say so, and how."""
    stale = _stale_lock(tmp_path)
    lock = tmp_path / LOCK_FILE
    if not _chattr("+i", lock):
        pytest.skip("chattr +i needs root and a filesystem that has the attribute")
    try:
        with pytest.raises(StoreError) as err, OutputLock(tmp_path, "new"):
            pass
    finally:
        _chattr("-i", lock)
    message = str(err.value)
    assert "\n" not in message and str(lock) in message and "cannot be removed" in message, message
    assert lock.read_bytes() == stale and _leftovers(tmp_path) == []


def test_a_stale_lock_in_a_sticky_folder_of_another_user_is_one_line(tmp_path):
    """A shared folder (mode 1777) lets every user create files but remove only their own."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to give the lock another owner, and setpriv to drop the powers that bypass that")
    out = tmp_path / "shared"
    out.mkdir()
    stale = _stale_lock(out)
    for path in (out, out / LOCK_FILE):
        os.chown(path, 12345, 12345)
    out.chmod(0o1777)
    code = "import sys; from saldata.storage.lock import OutputLock\nwith OutputLock(sys.argv[1], 'new'): pass"
    caps = "-dac_override,-dac_read_search,-fowner,-chown"
    proc = subprocess.run(
        ["setpriv", f"--bounding-set={caps}", "--inh-caps=-all", "--", sys.executable, "-c", code, str(out)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("saldata.errors.StoreError: The lock"), proc.stderr
    assert "cannot be removed: Operation not permitted" in last and "PermissionError" not in proc.stderr
    assert (out / LOCK_FILE).read_bytes() == stale
