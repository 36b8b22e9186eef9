"""Memory per op (`lab.timing.memory`, memray plus the kernel's RSS counters) and its gate:
the numbers are what the calls allocate, the same code measures the same, and a lookup that
allocates 1.25x as much is caught (and nothing else is)."""
import weakref

import numpy as np
import pytest

import engines
from lab.engine_select import EngineChoice, resolve
from lab.gate import compare
from lab.scenarios import IdSpec, OpSpec, Scenario, TableDef
from lab.suite import run_suite
from lab.timing import memory

pytestmark = pytest.mark.skipif(memory.unavailable_reason() is not None,
                                reason=f"{memory.unavailable_reason()}")

FAT = "test-fat-lookup"


def test_the_meter_counts_what_a_call_allocates(tmp_path):
    meter = memory.MemoryMeter(str(tmp_path))

    def work():
        keep = np.ones(1 << 20, np.uint8)            # 1 MiB held to the end
        for _ in range(3):
            np.ones(1 << 19, np.uint8)                # 512 KiB, freed at once
        return keep

    out, nan = meter(work, "x")
    rec = meter.records["x"]
    assert out.nbytes == 1 << 20 and nan != nan
    assert (1 << 20) + (1 << 19) <= rec["peak"] < (1 << 20) + (1 << 19) + 65536
    assert (1 << 20) + 3 * (1 << 19) <= rec["alloc"] < (1 << 20) + 3 * (1 << 19) + 65536
    assert rec["rss"] >= 0 and list(tmp_path.iterdir()) == []     # capture files removed


def _fat_class(cls):
    """The table class with a lookup that also holds a copy of a quarter of its result."""
    def lookup(self, ids, out=None):
        result = cls.lookup(self, ids, out)
        extra = result[: len(result) // 4].copy()        # with the result: 1.25x the bytes
        del extra
        return result

    return type(f"Fat{cls.__name__}", (cls,), {"__slots__": (), "lookup": lookup})


class FatLookupEngine(engines.Engine):
    """native-cpu whose tables allocate 1.25x the bytes in lookup (results unchanged)."""
    name = FAT

    def __init__(self, **options):
        self._base = engines.get("native-cpu", **options)
        self.capabilities = self._base.capabilities

    def create_table(self, *args, **kwargs):
        table = self._base.create_table(*args, **kwargs)
        assert not weakref.getweakrefcount(table)
        fat = object.__new__(_fat_class(type(table)))
        for name, value in vars(table).items():
            setattr(fat, name, value)
        return fat

    def _create_table(self, *args, **kwargs):
        raise NotImplementedError                         # create_table above is used

    def __getattr__(self, name):
        return getattr(self._base, name)


@pytest.fixture
def fat_engine():
    engines.register(FAT, lambda **options: FatLookupEngine(**options))
    yield FAT
    engines.unregister(FAT)


def _scenario():
    return Scenario(name="mem_tiny", tables=(TableDef(config={"dim": 32, "optimizer": "sgd"}),),
                    ops=(OpSpec("assign"), OpSpec("lookup"), OpSpec("size")), prefill=20_000,
                    batch_size=8_000, ids=IdSpec(kind="uniform", vocab=40_000), steps=2,
                    warmup=1)


def test_same_code_passes_and_a_fat_lookup_is_caught(fat_engine):
    choices, _ = resolve(["native-cpu"])
    if not choices:
        pytest.skip("native-cpu is not available here")
    base = choices[0]
    fat = EngineChoice(base.label, fat_engine, {}, base.capabilities, base.known_divergences)
    runs = [run_suite([_scenario()], [c], memory=True, quick=True).to_json()
            for c in (base, base, fat)]
    first, again, fatter = runs
    assert first["memory"] == "memray"
    lookup = next(r for r in first["results"] if r["op"] == "lookup")
    assert lookup["mem_peak_bytes"] >= 8_000 * 32 * 4
    assert len(lookup["mem_samples"]["peak"]) == memory.MIN_STEPS
    same = compare(again, first)
    assert same.memory_regressions == 0 and len(same.memory) == 6
    caught = compare(fatter, first)
    flagged = caught.memory[caught.memory.verdict == "REGRESSION"]
    assert set(flagged.op) == {"lookup"} and caught.exit_code == 1
    peak = flagged[flagged.metric == "mem_peak_bytes"].change.iloc[0]
    assert 1.2 < peak < 1.3
