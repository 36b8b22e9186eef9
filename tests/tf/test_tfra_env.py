"""Where the TFRA venv is looked for, and a worker that cannot start (issue 11, defect 8: the
installed `hashlab` ran `./.venvs/tfra/bin/python` from the current directory, and an
uncaught WorkerDied then ended the command). Runs without TFRA."""
from __future__ import annotations

import importlib.util
import os
import shutil
import stat

import pytest

import engines
from engines.tfra import env

ENV_SOURCE = env.__file__


@pytest.fixture
def clean_config(monkeypatch, tmp_path):
    monkeypatch.delenv("HASHLAB_TFRA_VENV", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _installed_copy(tmp_path):
    """engines/tfra/env.py as an installed package has it: in site-packages, no checkout."""
    site = tmp_path / "site-packages" / "engines" / "tfra"
    site.mkdir(parents=True)
    shutil.copy(ENV_SOURCE, site / "env.py")
    spec = importlib.util.spec_from_file_location("installed_tfra_env", site / "env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_python(path, script: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_installed_package_never_uses_the_current_directory(tmp_path, monkeypatch, clean_config):
    work = tmp_path / "somewhere"
    _fake_python(work / ".venvs" / "tfra" / "bin" / "python", "touch ran; exit 1")
    (work / "pyproject.toml").write_text("")          # even a checkout-looking folder
    monkeypatch.chdir(work)
    installed = _installed_copy(tmp_path)
    assert installed.checkout_root() is None
    assert installed.default_path() is None and installed.venv_python() is None


def test_locations_in_order(tmp_path, monkeypatch, clean_config):
    assert env.default_path() == os.path.join(env.checkout_root(), ".venvs", "tfra")
    recorded = tmp_path / "recorded"
    monkeypatch.setattr(env, "_run", lambda cmd: None)
    monkeypatch.setattr(env, "find_base_python", lambda: "python3.11")
    assert env.create_env(str(recorded), log=lambda msg: None) == env.venv_python(str(recorded))
    assert env.recorded_path() == str(recorded) and env.default_path() == str(recorded)
    monkeypatch.setenv("HASHLAB_TFRA_VENV", str(tmp_path / "from_env"))
    assert env.default_path() == str(tmp_path / "from_env")


def test_nothing_configured_is_a_clear_unavailable(monkeypatch, clean_config):
    from engines.tfra.engine import TfraEngine
    monkeypatch.setattr(env, "checkout_root", lambda: None)
    with pytest.raises(engines.EngineUnavailable, match="no tfra venv configured.*--path"):
        TfraEngine.probe()
    with pytest.raises(RuntimeError, match="no location for the TFRA venv: pass --path"):
        env.create_env(None, log=lambda msg: None)


def test_worker_that_dies_at_start_makes_the_engine_unavailable(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    _fake_python(venv / "bin" / "python", "echo 'cannot import tensorflow' >&2; exit 3")
    monkeypatch.setenv("HASHLAB_TFRA_VENV", str(venv))
    with pytest.raises(engines.EngineUnavailable, match="(?s)did not start.*cannot import tensorflow"):
        engines.get("tfra")
    from lab.engine_select import resolve
    usable, unusable = resolve(["tfra"])
    assert usable == [] and "did not start" in unusable[0][1]
