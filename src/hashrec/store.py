"""Atomic writes and the on-disk model format.

Every file hashrec writes goes to a temporary sibling first and is moved into place with
`os.replace`, so a crash never leaves a half-written file. A saved model is a directory holding
`model.json` (format version, model name, config, JSON state, SHA-256 of the weights) and
`weights.safetensors` (arrays). Nothing is ever unpickled: JSON and safetensors cannot run code.

No command deletes or overwrites what it did not make. Every command that writes a directory
checks it first, before any work, with `check_output_dir` (model directories) or
`claim_output_dir` (every other output folder, which it also marks with a `.hashrec` file
holding `{"kind": ...}` so that a rerun knows its own folder again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from hashrec.errors import ModelFileError, OutputError

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
MARKER = ".hashrec"  # {"kind": "prepare"}: the command that made this folder; never inside a model directory
MODEL = "model"  # the kind of a model directory, recognised by its model.json rather than a marker


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


def _folder_kind(path: Path) -> str | None:
    """What hashrec made `path`: MODEL, a command's marker kind, or None (not hashrec's, or unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        if (path / MODEL_JSON).is_file():
            meta = json.loads((path / MODEL_JSON).read_text(encoding="utf-8"))
            extra = {p.name for p in path.iterdir()} - {MODEL_JSON, WEIGHTS}
            written = isinstance(meta, dict) and "format_version" in meta and WEIGHTS in meta.get("sha256", {})
            return MODEL if written and not extra else None
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        return marker.get("kind") if isinstance(marker, dict) else None
    return None


def check_output_dir(path: str | os.PathLike, kind: str, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """The absolute `path` if a command of `kind` may write its directory there; else OutputError.

    Allowed: a path that does not exist yet (its parent must be writable), an empty directory, or
    a directory of the same kind: a model directory (model.json that hashrec wrote, beside nothing
    but its weights) for kind MODEL, a folder whose `.hashrec` marker names `kind` for the others.
    Refused: a file, any other non-empty directory, the current folder for a model (a model
    directory is swapped whole), and a path that is one of `inputs` or holds one. Call it before
    the work starts, so that a bad --out costs nothing.
    """
    if "\x00" in str(path):  # only from Python (a command line cannot hold one); os calls raise ValueError
        raise OutputError(f"{path!r}: a path cannot hold a NUL byte")
    given, path = path, Path(path).expanduser().resolve()  # resolve: Path(".").name is empty
    if path.exists() and not path.is_dir():
        raise OutputError(f"{given}: is a file, not a folder; refusing to replace it. Name a new folder")
    for source in inputs:
        source = Path(source).expanduser().resolve()
        if source == path or path in source.parents:
            raise OutputError(f"{given}: holds the input {source}; refusing to write over it. Name a new folder")
    if kind == MODEL and (path == Path.cwd() or path in Path.cwd().parents):
        raise OutputError(
            f"{given}: is the current folder (a model directory is replaced whole); "
            "name a new folder, e.g. --out runs/model"
        )
    found = _folder_kind(path) if path.is_dir() else kind
    if found != kind and _entries(path):
        what = (
            "is a hashrec model"
            if found == MODEL
            else f"was made by `hashrec {found}`"
            if found
            else f"holds files hashrec did not write ({', '.join(_entries(path)[:5])})"
        )
        mine = "a model directory" if kind == MODEL else f"one `hashrec {kind}` made"
        raise OutputError(
            f"{given}: {what}; refusing to replace it or write into it. Name a new folder, an empty one, or {mine}"
        )
    _check_writable(path, given)
    return path


def claim_output_dir(path: str | os.PathLike, kind: str, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """`check_output_dir`, then create the folder and mark it as `kind`'s (a rerun then writes into it again).

    For every output folder but a model directory (use `check_output_dir` there: `load_model_dir`
    refuses extra files in a model). Returns the absolute path.
    """
    if kind == MODEL:
        raise ValueError("a model directory is recognised by its model.json; use check_output_dir")
    path = check_output_dir(path, kind, inputs)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not (path / MARKER).is_file():
            write_json(path / MARKER, {"kind": kind})
    except OSError as e:
        raise OutputError(f"{path}: cannot write there ({e.strerror or e}); name another folder") from None
    return path


def _entries(path: Path) -> list[str]:
    """What a folder holds, less a marker another process is writing this moment (torchrun's ranks
    claim one checkpoint folder together)."""
    try:
        return sorted(p.name for p in path.iterdir() if not _marker_in_flight(p.name)) if path.is_dir() else []
    except OSError:
        return []


def _marker_in_flight(name: str) -> bool:
    return name.startswith(f".{MARKER}.") and name.endswith(".tmp")  # atomic_open's temporary sibling


def _check_writable(path: Path, given: str | os.PathLike) -> None:
    """Create `path`'s parent and a temporary folder beside `path`: the moves a save makes, tried before the work."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"))
    except OSError as e:
        raise OutputError(f"{given}: cannot write there ({e.strerror or e}); name another folder") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model_dir(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write a model directory atomically: built in a temporary sibling, then swapped in.

    Only an absent path, an empty folder or an earlier model is replaced (`check_output_dir`).
    """
    from safetensors.numpy import save_file

    path = check_output_dir(path, MODEL)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / WEIGHTS))
        os.chmod(tmp / WEIGHTS, 0o666 & ~_umask())  # safetensors writes 0600; give the mode a plain open would
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
        raise ModelFileError(
            f"{path}: not a hashrec model directory (no {MODEL_JSON}); train one with `hashrec train --out DIR`"
        )
    extra = sorted(p.name for p in path.iterdir() if p.name not in (MODEL_JSON, WEIGHTS))
    if extra:
        raise ModelFileError(
            f"{path}: unexpected files {extra}; a hashrec model holds only "
            f"{MODEL_JSON} and {WEIGHTS}. Refusing to load (remove them if you trust them)"
        )
    try:
        meta = json.loads((path / MODEL_JSON).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path / MODEL_JSON}: corrupted ({e}); retrain or restore the model") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        got = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(
            f"{path}: model format version {got!r}, this hashrec reads version "
            f"{FORMAT_VERSION}; retrain it with this version (saved by hashrec "
            f"{meta.get('hashrec_version') if isinstance(meta, dict) else '?'})"
        )
    weights = path / WEIGHTS
    if not weights.is_file() or sha256_file(weights) != meta.get("sha256", {}).get(WEIGHTS):
        raise ModelFileError(
            f"{weights}: missing or its checksum does not match {MODEL_JSON} "
            "(truncated or corrupted copy); copy the model again or retrain"
        )
    try:
        arrays = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{weights}: unreadable ({e}); copy the model again or retrain") from None
    return meta, arrays
