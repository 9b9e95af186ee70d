"""The local host's Python 3.13 environment, made once, then the local run in it: `python3.13 -m devhost.environment`.

scripts/run-local runs this with pyenv's Python 3.13.0 (or PYTHON313), the interpreter scripts/test runs the
runtime suite with. It makes the virtual environment the runtime suite uses too, .cache/venv-runtime-3.13, installs
devhost/requirements.txt into it (every version pinned: Microsoft's worker runtime, the protocol's compiler, the
app's requirements), and runs `python -m devhost` there with the same arguments. The install is done again only
when a requirements file changed: a hash of them is kept in the environment. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "venv-runtime-3.13"
REQUIREMENTS = [ROOT / "devhost" / "requirements.txt", ROOT / "requirements.txt"]
MARKER = VENV / "devhost-requirements.sha256"


def _say(text: str) -> None:
    print(f"run-local: {text}", flush=True)


def _digest() -> str:
    h = hashlib.sha256()
    for path in REQUIREMENTS:
        h.update(path.read_bytes())
    return h.hexdigest()


def ensure() -> Path:
    """The environment's Python, made and installed when missing or out of date."""
    python = VENV / "bin" / "python"
    wanted = _digest()
    if python.is_file() and MARKER.is_file() and MARKER.read_text().strip() == wanted:
        return python
    started = time.monotonic()
    if not python.is_file():
        _say(f"first run: creating the Python 3.13 environment {VENV.relative_to(ROOT)} and installing "
             f"devhost/requirements.txt (Microsoft's worker runtime, gRPC tools, the app's requirements) ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    else:
        _say(f"installing devhost/requirements.txt into {VENV.relative_to(ROOT)} (a requirements file changed) ...")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(REQUIREMENTS[0])], check=True)
    MARKER.write_text(wanted + "\n")
    _say(f"Python 3.13 environment ready in {time.monotonic() - started:.1f} s")
    return python


def main() -> int:
    if sys.version_info[:2] != (3, 13):
        print(f"run-local: Microsoft's worker runtime for this app needs Python 3.13, not {sys.version.split()[0]} "
              f"({sys.executable}); set PYTHON313", file=sys.stderr)
        return 1
    try:
        python = ensure()
    except subprocess.CalledProcessError as e:
        print(f"run-local: making {VENV} failed (exit {e.returncode}): {' '.join(map(str, e.cmd))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    os.execv(python, [str(python), "-m", "devhost", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
