"""Shared by every test."""

from __future__ import annotations

import signal

# A shell without job control starts background commands (`.ci/run &`, `nohup ... &`) with
# SIGINT ignored, and children inherit that: Python then never raises KeyboardInterrupt and
# `_thread.interrupt_main()` does nothing, so the Ctrl-C tests would see a run that cannot be
# interrupted. Give this process (and through exec, the runs it starts) the default again.
signal.signal(signal.SIGINT, signal.default_int_handler)
