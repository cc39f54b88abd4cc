"""The wheel works outside the checkout: built from the source tree, installed into a fresh
virtual environment, `sidlive demo` and `sidlive generate` find the shipped model, loops and
maps in the installed package (presets are package data)."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from sidlive.frames import load

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(fresh venv's bin folder, environment, a folder outside the checkout) with the wheel installed."""
    if not (ROOT / "presets" / "models" / "default.sidm").is_file():
        pytest.skip("no shipped model in presets/models")
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(ROOT)], cwd=tmp, env=env)
    wheel = next((tmp / "dist").glob("sidlive-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for want in ("sidlive/presets/models/default.sidm", "sidlive/presets/loops/cabrinigreen.regs",
                 "sidlive/presets/controllers/generic.toml", "sidlive/presets/fx/dub.toml",
                 "sidlive/studio/static/index.html",
                 "training/configs/default.toml"):
        assert want in names, f"{want} is not in {wheel.name}"
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=env)
    bin_dir = venv / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=tmp, env=env)
    # The dependencies (numpy, numba, pyresidfp, ...) come from this test's environment: a
    # path line, not a site dir, so its .pth files (the editable checkout) are not read.
    site = Path(subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return bin_dir, env, work


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, env, work = installed
    out = _run([str(bin_dir / "python"), "-c", "import sidlive, sidlive.paths as p; print(sidlive.__file__); "
                "print(p.PRESETS_DIR); print(p.DEFAULT_MODEL.is_file())"], cwd=work, env=env).stdout.split()
    venv = str(bin_dir.parent)
    assert out[0].startswith(venv) and out[1].startswith(venv) and out[2] == "True", out


def test_demo_and_generate_run_from_the_wheel(installed):
    bin_dir, env, work = installed
    r = _run([str(bin_dir / "sidlive"), "demo", "--seconds", "3", "--no-play", "--out", str(work / "demo")],
             cwd=work, env=env)
    wav = work / "demo" / "live-set.wav"
    assert wav.stat().st_size > 44 + 2 * 48_000, r.stdout
    assert len(load(wav.with_suffix(".regs"))) >= 100
    _run([str(bin_dir / "sidlive"), "generate", "--frames", "60", "--seed", "1", "-o", str(work / "g.regs")],
         cwd=work, env=env)
    assert load(work / "g.regs").regs.shape == (60, 25)
