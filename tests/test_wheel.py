"""The wheel that `python -m build` makes installs and works on its own: CLI, recommend, the page's files.

The wheel is built from a copy of the project's files (so the build leaves nothing in the tree),
installed with `pip install --no-deps --target` (its dependencies come from the running venv), and
every check runs in a child whose PYTHONPATH is the installed copy only, never src/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hashrec.data import write_jsonl

ROOT = Path(__file__).resolve().parents[1]

CHECK_INSTALLED = """
import sys, hashrec
from pathlib import Path
from fastapi.testclient import TestClient
from hashrec.server import create_app
assert Path(hashrec.__file__).is_relative_to(Path(sys.argv[1])), hashrec.__file__
client = TestClient(create_app(sys.argv[2]))
page = client.get("/")
assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:200]
static = [name for name in ("app.js", "style.css") if client.get(f"/static/{name}").status_code != 200]
assert not static, static
answer = client.post("/recommend", json={"text": sys.argv[3], "k": 3}).json()
assert len(answer["hashtags"]) == 3, answer
print(hashrec.__file__)
"""


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)]
    subprocess.run(build, check=True, capture_output=True, text=True)
    (wheel,) = (tmp / "dist").glob("hashrec-*.whl")
    return wheel


def test_the_built_wheel_installs_and_serves_from_the_installed_copy(tmp_path, weibo_sample):
    pytest.importorskip("build")
    wheel = _build_wheel(tmp_path)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (site / "hashrec" / "static" / "index.html").is_file()
    env = {**os.environ, "PYTHONPATH": str(site), "HASHREC_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}

    def hashrec(*args: str) -> str:
        return subprocess.run(
            [str(site / "bin" / "hashrec"), *args], env=env, check=True, capture_output=True, text=True, cwd=tmp_path
        ).stdout

    assert "recommend" in hashrec("--help")
    data = tmp_path / "data"
    for part, n in (("train", 1000), ("dev", 100), ("test", 100)):
        write_jsonl(data / f"{part}.jsonl.gz", weibo_sample[part][:n])
    hashrec("train", "--model", "nb", "--data", str(data), "--out", str(tmp_path / "nb"))
    text = weibo_sample["test"][0].text
    assert hashrec("recommend", "--model", str(tmp_path / "nb"), "-k", "3", text).count("#") >= 3
    out = subprocess.run(
        [sys.executable, "-c", CHECK_INSTALLED, str(site), str(tmp_path / "nb"), text],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert out.strip().startswith(str(site))
