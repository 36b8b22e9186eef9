"""asv silently ignores misspelled keys in asv.conf.json: check every key against the
attributes asv's Config knows."""
import os

import pytest

asv_config = pytest.importorskip("asv.config", reason="asv is not installed (bench extra)")
from asv import util  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF = os.path.join(ROOT, "asv.conf.json")
# Keys asv reads outside Config.__init__ ('version' is checked by load_json, build_cache_size
# by the build cache).
EXTRA_KEYS = {"version", "build_cache_size"}


def _conf():
    return util.load_json(CONF, js_comments=True)


def test_every_key_is_known_to_asv():
    known = set(vars(asv_config.Config())) | EXTRA_KEYS
    unknown = sorted(set(_conf()) - known)
    assert not unknown, f"asv.conf.json keys asv does not know: {unknown}"


def test_required_settings():
    conf = _conf()
    assert conf["version"] == 1 and conf["project"] == "hashtable-lab" and conf["repo"] == "."
    assert conf["environment_type"] == "virtualenv" and conf["pythons"] == ["3.11"]
    assert conf["branches"] == ["main"] and conf["benchmark_dir"] == "benchmarks"
    assert conf["env_dir"] == ".asv/env" and conf["results_dir"] == ".asv/results"
    assert conf["html_dir"] == ".asv/html"
    assert any("HASHLAB_CUDA=OFF" in c and "{build_cache_dir}" in c
               for c in conf["build_command"])
    assert set(conf["matrix"]["req"]) >= {"numpy", "protobuf", "crc32c", "pandas",
                                          "matplotlib", "tqdm", "psutil"}


def test_asv_loads_it_and_parses_the_commands():
    conf = asv_config.Config.load(CONF)
    for command in conf.build_command + conf.install_command + conf.uninstall_command:
        cmd, env, _, _ = util.interpolate_command(
            command, {"build_cache_dir": "/c", "build_dir": "/b", "env_dir": "/e",
                      "wheel_file": "/c/x.whl"})
        assert cmd[0] == "python"
    cmd, env, _, _ = util.interpolate_command(conf.build_command[0],
                                              {"build_cache_dir": "/c", "build_dir": "/b"})
    assert env == {"HASHLAB_CUDA": "OFF"}
