"""Overlay upper directories: directories that keep the lower modes, and whiteouts."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def whiteout(path: Path) -> None:
    """Hide a lower file or directory: an overlay whiteout (a 0:0 character device) at path."""
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def make_dirs(upper: Path, lower: Path, rel: str) -> None:
    """Create rel under an upper directory, each level with the mode of the lower one (or 0755)."""
    path, low = upper, lower
    for part in Path(rel).parts:
        path, low = path / part, low / part
        if not path.is_dir():
            path.mkdir()
            try:
                mode = stat.S_IMODE(os.stat(low).st_mode)
            except OSError:
                mode = 0o755
            path.chmod(mode)
