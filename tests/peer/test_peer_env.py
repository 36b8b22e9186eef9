"""Where a peer's venv is looked for, how it is built, and a worker that cannot start (issue 11,
defect 8: the installed `hashlab` ran `./.venvs/tfra/bin/python` from the current directory,
and an uncaught WorkerDied then ended the command). Runs without TFRA or torch."""
from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys

import pytest

import engines
from engines.peer import venv as peer_venv
from engines.tfra.engine import TfraEngine
from engines.torchrec.engine import TorchrecEngine

VENV_SOURCE = peer_venv.__file__
PEERS = [TfraEngine, TorchrecEngine]
by_name = pytest.mark.parametrize("peer", PEERS, ids=lambda p: p.name)


@pytest.fixture
def clean_config(monkeypatch, tmp_path):
    for peer in PEERS:
        monkeypatch.delenv(peer.venv.env_var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _installed_copy(tmp_path, monkeypatch):
    """engines/peer/venv.py as an installed package has it: in site-packages, no checkout."""
    site = tmp_path / "site-packages" / "engines" / "peer"
    site.mkdir(parents=True)
    shutil.copy(VENV_SOURCE, site / "venv.py")
    spec = importlib.util.spec_from_file_location("installed_peer_venv", site / "venv.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)      # dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def _fake_python(path, script: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@by_name
def test_installed_package_never_uses_the_current_directory(tmp_path, monkeypatch, clean_config,
                                                            peer):
    work = tmp_path / "somewhere"
    _fake_python(work / ".venvs" / peer.name / "bin" / "python", "touch ran; exit 1")
    (work / "pyproject.toml").write_text("")          # even a checkout-looking folder
    monkeypatch.chdir(work)
    installed = _installed_copy(tmp_path, monkeypatch)
    assert installed.checkout_root() is None
    venv = installed.PeerVenv(peer.name, peer.venv.title, peer.venv.installs, peer.venv.size)
    assert venv.default_path() is None and venv.python() is None


@by_name
def test_locations_in_order(tmp_path, monkeypatch, clean_config, peer):
    venv = peer.venv
    assert venv.default_path() == os.path.join(peer_venv.checkout_root(), ".venvs", peer.name)
    recorded = tmp_path / "recorded"
    ran = []
    monkeypatch.setattr(peer_venv, "run", ran.append)
    monkeypatch.setattr(peer_venv.PeerVenv, "find_base_python", lambda self: "python3.11")
    assert venv.create(str(recorded), log=lambda msg: None) == venv.python(str(recorded))
    assert venv.recorded_path() == str(recorded) and venv.default_path() == str(recorded)
    # one venv, then every install step in order, each with the venv's own pip
    assert ran[0] == ["python3.11", "-m", "venv", str(recorded)]
    assert [cmd[6:] for cmd in ran[1:]] == [list(step) for step in venv.installs]
    assert all(cmd[0] == venv.python(str(recorded)) for cmd in ran[1:])
    monkeypatch.setenv(venv.env_var, str(tmp_path / "from_env"))
    assert venv.default_path() == str(tmp_path / "from_env")
    other = [p for p in PEERS if p is not peer][0].venv
    assert other.default_path() != venv.default_path()     # each peer its own venv


@by_name
def test_nothing_configured_is_a_clear_unavailable(monkeypatch, clean_config, peer):
    monkeypatch.setattr(peer_venv, "checkout_root", lambda: None)
    with pytest.raises(engines.EngineUnavailable,
                       match=f"no {peer.name} venv configured.*--path"):
        peer.probe()
    with pytest.raises(RuntimeError, match=f"no location for the {peer.venv.title} venv: "
                                           f"pass --path"):
        peer.venv.create(None, log=lambda msg: None)


def test_a_failed_install_step_names_the_command_and_its_output(tmp_path):
    with pytest.raises(RuntimeError, match="(?s)exit 3.*no such package"):
        peer_venv.run(["sh", "-c", "echo no such package; exit 3"])


def test_unknown_environment():
    with pytest.raises(ValueError, match="unknown environment 'nope'"):
        peer_venv.environment("nope")
    assert peer_venv.environment("torchrec") is TorchrecEngine.venv


@pytest.mark.parametrize("peer,why", [(TfraEngine, "cannot import tensorflow"),
                                      (TorchrecEngine, "cannot import torch")],
                         ids=["tfra", "torchrec"])
def test_worker_that_dies_at_start_makes_the_engine_unavailable(tmp_path, monkeypatch, peer,
                                                                why):
    venv = tmp_path / "venv"
    _fake_python(venv / "bin" / "python", f"echo '{why}' >&2; exit 3")
    monkeypatch.setenv(peer.venv.env_var, str(venv))
    with pytest.raises(engines.EngineUnavailable, match=f"(?s)did not start.*{why}"):
        engines.get(peer.name)
    from lab.engine_select import resolve
    usable, unusable = resolve([peer.name])
    assert usable == [] and "did not start" in unusable[0][1]
