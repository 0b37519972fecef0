"""Child processes a command starts, and stopping all of them on Ctrl-C, SIGTERM and SIGHUP."""

from __future__ import annotations
