"""A child process that ends when the server process goes away, so a killed server never leaves
children computing for nobody."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(interval_seconds: float = 1.0) -> None:
    """End this process once its parent is gone. (A watchdog on the parent pid, not PR_SET_PDEATHSIG:
    that signal fires when the *thread* that started the child exits, and pools and jobs start their
    processes from passing threads.)"""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_seconds)  # a watchdog's period, not synchronisation
        os._exit(0)

    threading.Thread(target=watch, name="helix-parent-watchdog", daemon=True).start()
