"""`make run` output stays clean: pip's setuptools "Editable installation" warning is hidden."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_editable_install_hides_the_setuptools_warning() -> None:
    recipe = (ROOT / "Makefile").read_text()
    line = next(ln for ln in recipe.splitlines() if "pip install" in ln and "-e " in ln)
    match = re.search(r'PYTHONWARNINGS="([^"]+)"', line)
    assert match, line
    # The filter, in a child like pip's build backend, silences the warning setuptools emits.
    code = (
        "import warnings\n"
        "class BuildBackendWarning(UserWarning): pass\n"
        "warnings.warn('Editable installation.\\n!!\\n  details', BuildBackendWarning)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": match.group(1)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.stderr == "", proc.stderr
    loud = subprocess.run(
        [sys.executable, "-c", code],
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
        capture_output=True,
        text=True,
    )
    assert "Editable installation" in loud.stderr
