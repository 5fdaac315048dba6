"""Atomic writes and the on-disk model format.

Every file hashrec writes goes to a temporary sibling first and is moved into place with
`os.replace`, so a crash never leaves a half-written file. A saved model is a directory holding
`model.json` (format version, model name, config, JSON state, SHA-256 of the weights) and
`weights.safetensors` (arrays). Nothing is ever unpickled: JSON and safetensors cannot run code.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from hashrec.errors import ModelFileError

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; move it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model_dir(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write a model directory atomically: built in a temporary sibling, then swapped in."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / WEIGHTS))
        meta = dict(meta, format_version=FORMAT_VERSION, sha256={WEIGHTS: sha256_file(tmp / WEIGHTS)})
        with open(tmp / MODEL_JSON, "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False, indent=1)
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, path: Path) -> None:
    """Move the directory `new` onto `path`, never leaving `path` absent where the system can help it.

    Where `path` exists, Linux's renameat2(RENAME_EXCHANGE) swaps the two in one step (a crash
    leaves the old model or the new one at `path`); elsewhere the old one is first moved aside
    (a crash between the two moves leaves it at `.NAME.old-PID` beside `path`).
    """
    if path.exists() and _exchange(new, path):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old model
        return
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where the C library or file system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def load_model_dir(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a model directory; refuse anything that is not exactly what `save` wrote."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not (path / MODEL_JSON).is_file():
        raise ModelFileError(f"{path}: not a hashrec model directory (no {MODEL_JSON}); "
                             "train one with `hashrec train --out DIR`")
    extra = sorted(p.name for p in path.iterdir() if p.name not in (MODEL_JSON, WEIGHTS))
    if extra:
        raise ModelFileError(f"{path}: unexpected files {extra}; a hashrec model holds only "
                             f"{MODEL_JSON} and {WEIGHTS}. Refusing to load (remove them if you trust them)")
    try:
        meta = json.loads((path / MODEL_JSON).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path / MODEL_JSON}: corrupted ({e}); retrain or restore the model") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        got = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(f"{path}: model format version {got!r}, this hashrec reads version "
                             f"{FORMAT_VERSION}; retrain it with this version (saved by hashrec "
                             f"{meta.get('hashrec_version') if isinstance(meta, dict) else '?'})")
    weights = path / WEIGHTS
    if not weights.is_file() or sha256_file(weights) != meta.get("sha256", {}).get(WEIGHTS):
        raise ModelFileError(f"{weights}: missing or its checksum does not match {MODEL_JSON} "
                             "(truncated or corrupted copy); copy the model again or retrain")
    try:
        arrays = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{weights}: unreadable ({e}); copy the model again or retrain") from None
    return meta, arrays
