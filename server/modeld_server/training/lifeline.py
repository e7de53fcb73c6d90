"""Imported by the training forkserver first, and only there: it dies with the daemon.

Importing it arms this process's death signal, bound to the thread that started it (see
spawner.py, the only place that starts the forkserver). If the daemon died before this
ran, the forkserver's own check of its "alive" pipe ends it once its preload is done.
"""

from __future__ import annotations

from modeld_server.training.parallel import die_with_parent

die_with_parent()
