"""A local run's Ray processes never outlive its driver.

Ray's head processes, started by ``ray.init`` for a local run, mostly follow a driver killed
with SIGKILL, but some (the dashboard and runtime-env agents) stay forever. The reaper is a
small process the driver starts beside Ray: it notes the driver's descendants every half
second and, once the driver is gone, kills every one of them it saw. Workers never commit
(the driver does), so this is about leaving nothing running, not about data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

POLL_S = 0.5


def start_reaper() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "saldata.pipelines.reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )


def watch(driver_pid: int) -> None:
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    seen: dict[int, psutil.Process] = {}
    while True:
        try:
            if driver.status() == psutil.STATUS_ZOMBIE:
                break
            for child in driver.children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        time.sleep(POLL_S)
    # Ones started after the last look are children of ones already seen.
    for proc in list(seen.values()):
        try:
            for child in proc.children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.Error:
            continue
    for proc in seen.values():
        if proc.pid == os.getpid():
            continue
        try:
            proc.kill()  # psutil checks the process is the one it saw (start time), not a reused pid
        except psutil.Error:
            continue


if __name__ == "__main__":
    watch(int(sys.argv[1]))
