"""Our .proto files and generated code: current, wire-compatible with Monolith, right defaults.

Byte vectors and schema tables are from docs/monolith/filters_checkpoints_fused.md
(fsf §A.9, §B.2, §B.7, Part E) and docs/monolith/table_core.md (core Appendix A).
"""
from __future__ import annotations

import glob
import importlib.util
import os
import pickle
import struct
import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import FieldDescriptor

from engines.protos import embedding_hash_table_pb2 as eht
from engines.protos import float_compressor_pb2 as fc
from engines.protos import hash_table_ops_pb2 as hto
from engines.protos import initializer_config_pb2 as ic
from engines.protos import multi_hash_table_ops_pb2 as mhto
from engines.protos import optimizer_pb2 as opt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_DIR = os.path.join(REPO, "proto")
PROTOS_PKG = os.path.join(REPO, "engines", "protos")
MODULES = [fc, ic, opt, eht, hto, mhto]


def _load_generator():
    spec = importlib.util.spec_from_file_location("_hashlab_proto_generate",
                                                  os.path.join(PROTO_DIR, "generate.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


generate = _load_generator()


def _protoc_or_skip() -> list[str]:
    try:
        return generate.protoc_command()
    except RuntimeError as e:
        pytest.skip(f"cannot regenerate: {e}")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def f32(x: float) -> float:
    """x rounded to float32, as protobuf returns float fields."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


# ---------------------------------------------------------------------------------------------
# (a) currency: committed engines/protos/*_pb2.py match proto/*.proto


def _normalized(fdp: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Remove differences in spelling only: descriptor sets carry json_name, which the Python
    generator does not embed; float defaults are rendered as "0.1" by one and "0.100000001" by
    the other; older protoc leaves proto2's syntax empty."""
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(fdp)

    def fix(field):
        field.ClearField("json_name")
        if field.HasField("default_value"):
            if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT:
                field.default_value = repr(f32(float(field.default_value)))
            elif field.type == descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE:
                field.default_value = repr(float(field.default_value))

    def walk(messages):
        for m in messages:
            for f in list(m.field) + list(m.extension):
                fix(f)
            walk(m.nested_type)

    walk(out.message_type)
    for f in out.extension:
        fix(f)
    if out.syntax == "proto2":
        out.ClearField("syntax")
    return out


def test_every_proto_has_a_committed_module_and_nothing_else():
    protos = {os.path.basename(p)[:-len(".proto")] for p in glob.glob(os.path.join(PROTO_DIR, "*.proto"))}
    committed = {os.path.basename(p)[:-len("_pb2.py")] for p in glob.glob(os.path.join(PROTOS_PKG, "*_pb2.py"))}
    assert protos == committed == {m.__name__.rsplit(".", 1)[1][:-len("_pb2")] for m in MODULES}


def test_committed_descriptors_match_proto_sources(tmp_path):
    protoc = _protoc_or_skip()
    out = tmp_path / "set.pb"
    subprocess.run(protoc + ["-I", PROTO_DIR, f"--descriptor_set_out={out}", "--include_imports"]
                   + generate.proto_files(), check=True)
    fresh = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}
    assert set(fresh) == {m.DESCRIPTOR.name for m in MODULES}
    for mod in MODULES:
        committed = descriptor_pb2.FileDescriptorProto.FromString(mod.DESCRIPTOR.serialized_pb)
        assert _normalized(committed) == _normalized(fresh[mod.DESCRIPTOR.name]), (
            f"{mod.__name__} is stale: run python proto/generate.py")


def test_generate_py_output_is_byte_identical_to_committed(tmp_path):
    _protoc_or_skip()
    version = generate.protoc_version()
    if version != "libprotoc 3.21.12":
        pytest.skip(f"committed code comes from protoc 3.21.12; this machine has {version}")
    paths = generate.generate(str(tmp_path))
    committed = {os.path.basename(p) for p in glob.glob(os.path.join(PROTOS_PKG, "*.py"))}
    assert {os.path.basename(p) for p in paths} == committed
    for path in paths:
        with open(path, encoding="utf-8") as fresh, \
                open(os.path.join(PROTOS_PKG, os.path.basename(path)), encoding="utf-8") as committed:
            assert fresh.read() == committed.read(), f"{os.path.basename(path)} differs"


def test_rewrite_touches_only_our_modules():
    src = ("import optimizer_pb2 as optimizer__pb2\n"
           "from optimizer_pb2 import *\n"
           "import other_pb2 as other__pb2\n"
           "from google.protobuf import descriptor as _descriptor\n"
           "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'optimizer_pb2', globals())\n")
    assert generate.rewrite_imports(src, {"optimizer_pb2"}) == (
        "from . import optimizer_pb2 as optimizer__pb2\n"
        "from .optimizer_pb2 import *\n"
        "import other_pb2 as other__pb2\n"
        "from google.protobuf import descriptor as _descriptor\n"
        "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, __name__, globals())\n")


def test_committed_code_does_not_require_a_new_runtime():
    # protoc >= 25 emits a runtime-version gate that rejects protobuf 4.25 (docs/toolchain.md).
    for path in glob.glob(os.path.join(PROTOS_PKG, "*_pb2.py")):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert "_runtime_version" not in text, f"{path} was generated by a protoc newer than 3.21.12"
        assert "Protobuf Python Version" not in text, path


def test_importing_protos_is_light():
    code = ("import sys, engines; before = set(sys.modules)\n"
            "import engines.protos, engines.protos.embedding_hash_table_pb2, "
            "engines.protos.hash_table_ops_pb2, engines.protos.multi_hash_table_ops_pb2\n"
            "heavy = [m for m in set(sys.modules) - before "
            "if m.split('.')[0] in ('tensorflow', 'torch', 'jax', 'cupy', 'pandas', 'matplotlib')]\n"
            "assert not heavy, heavy\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


def test_messages_pickle_with_their_package_module():
    cfg = eht.EmbeddingHashTableConfig(initial_capacity=7)
    cfg.cuckoo.SetInParent()
    assert type(cfg).__module__ == "engines.protos.embedding_hash_table_pb2"
    assert pickle.loads(pickle.dumps(cfg)) == cfg


# ---------------------------------------------------------------------------------------------
# (b) wire bytes


def _entry(id_, num, dumps, ts):
    e = eht.EntryDump(id=id_, num=num, last_update_ts_sec=ts)
    for kind, fields in dumps:
        getattr(e.opt.dump.add(), kind).SetInParent()
        for name, value in fields.items():
            getattr(getattr(e.opt.dump[-1], kind), name).extend(value)
    return e


ENTRY_VECTORS = [  # fsf §B.2
    (_entry(5, [2.5], [("sgd", {})], 0),
     "09 05 00 00 00 00 00 00 00 15 00 00 20 40 1a 04 0a 02 12 00 20 00"),
    (_entry(-3, [-0.5], [("sgd", {})], 0),
     "09 fd ff ff ff ff ff ff ff 15 00 00 00 bf 1a 04 0a 02 12 00 20 00"),
    (_entry((1 << 48) | 7, [1, -2], [("adagrad", {"norm": [0.1, 4.1]})], 1700000000),
     "09 07 00 00 00 00 00 01 00 15 00 00 80 3f 15 00 00 00 c0 1a 0e 0a 0c 0a 0a 0d cd cc cc 3d"
     " 0d 33 33 83 40 20 80 e2 cf aa 06"),
    (_entry(1, [0.5, 0.25], [("sgd", {}), ("adagrad", {"norm": [0.1]})], 100),
     "09 01 00 00 00 00 00 00 00 15 00 00 00 3f 15 00 00 80 3e 1a 0d 0a 02 12 00 0a 07 0a 05 0d"
     " cd cc cc 3d 20 64"),
]


@pytest.mark.parametrize("msg,hexbytes", ENTRY_VECTORS)
def test_entry_dump_bytes(msg, hexbytes):
    assert msg.SerializeToString() == h(hexbytes)
    assert eht.EntryDump.FromString(h(hexbytes)) == msg


def test_first_entry_vector_is_22_bytes():
    assert len(ENTRY_VECTORS[0][0].SerializeToString()) == 22


def test_entry_dump_zero_timestamp_is_serialized_when_set():
    assert eht.EntryDump(num=[1.0], last_update_ts_sec=0).SerializeToString().endswith(h("20 00"))
    assert eht.EntryDump().SerializeToString() == b""  # lookup_entry of a missing id


def _filter_meta(num_elements, head, head_increment):
    return eht.HashFilterSplitMetaDump(
        failure_count=0, total_size=3, num_elements=num_elements, fill_rate=1.2,
        sliding_hash_filter_meta=eht.SlidingHashFilterMetaDump(
            split_num=100, max_forward_step=2, max_backward_step=98, max_step=16,
            head=head, head_increment=head_increment, failure_count=0))


@pytest.mark.parametrize("msg,hexbytes", [  # fsf §A.9
    (_filter_meta(0, 0, 0),
     "08 00 10 03 18 00 21 33 33 33 33 33 33 f3 3f 2a 0e 08 64 10 02 18 62 20 10 28 00 30 00 38 00"),
    (_filter_meta(2, 4, 4),
     "08 00 10 03 18 02 21 33 33 33 33 33 33 f3 3f 2a 0e 08 64 10 02 18 62 20 10 28 04 30 04 38 00"),
])
def test_hash_filter_meta_bytes(msg, hexbytes):
    data = msg.SerializeToString()
    assert len(data) == 31
    assert data == h(hexbytes)
    assert eht.HashFilterSplitMetaDump.FromString(data) == msg


def test_hash_filter_data_record_bytes():
    rec = eht.HashFilterSplitDataDump(offset=10000, data=[0x31, 0xFFF5])
    assert rec.SerializeToString() == h("08 90 4e 10 31 10 f5 ff 03")


def test_hash_filter_empty_67_cell_record_is_unpacked():
    data = eht.HashFilterSplitDataDump(offset=0, data=[0] * 67).SerializeToString()
    assert len(data) == 136
    assert data == h("08 00") + h("10 00") * 67


def test_multi_hash_table_metadata_bytes():
    msg = eht.MultiHashTableMetadata(table_name="slot_1", num_entries=2)
    assert msg.SerializeToString() == h("0a 06 73 6c 6f 74 5f 31 10 02")


def test_hash_table_proto_kboolnone_is_a_ten_byte_varint():
    msg = hto.HashTableProto(export_share_embedding=hto.HashTableProto.kBoolNone)
    assert msg.SerializeToString() == h("40 ff ff ff ff ff ff ff ff ff 01")


# ---------------------------------------------------------------------------------------------
# Schema: every message of Part E with its fields (name, number, label, type)

# "name=number:type", "*" before the name marks repeated; message/enum types by short name.
SCHEMA = {
    # E.4
    "FloatCompressorConfig": "fp32=1:Fp32 fp16=2:Fp16 fixed_r8=3:FixedR8 one_bit=4:OneBit",
    "FloatCompressorConfig.Fp32": "dim_size=1:int32",
    "FloatCompressorConfig.Fp16": "dim_size=1:int32",
    "FloatCompressorConfig.FixedR8": "dim_size=1:int32 r=2:float",
    "FloatCompressorConfig.OneBit": ("dim_size=1:int32 step_size=2:int64 init_scale=3:float "
                                     "max_scale=4:float amplitude=5:float"),
    # E.3
    "ZerosInitializerConfig": "dim_size=1:int32",
    "OnesInitializerConfig": "dim_size=1:int32",
    "ConstantsInitializerConfig": "dim_size=1:int32 constant=2:float",
    "RandomUniformInitializerConfig": "dim_size=1:int32 minval=2:float maxval=3:float",
    "InitializerConfig": ("zeros=1:ZerosInitializerConfig random_uniform=2:RandomUniformInitializerConfig "
                          "ones=3:OnesInitializerConfig constants=15:ConstantsInitializerConfig"),
    # E.2 configs
    "AdagradOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float initial_accumulator_value=3:float "
                               "hessian_compression_times=4:int32 weight_decay_factor=5:float "
                               "warmup_steps=6:int64"),
    "DynamicWdAdagradOptimizerConfig": (
        "dim_size=1:int32 learning_rate=2:float initial_accumulator_value=3:float "
        "hessian_compression_times=4:int32 weight_decay_factor=5:float warmup_steps=6:int64 "
        "decouple_weight_decay=7:bool enable_dynamic_wd=8:bool dynamic_wd_temperature=9:float "
        "flip_direction=10:bool"),
    "SgdOptimizerConfig": "dim_size=1:int32 learning_rate=2:float warmup_steps=6:int64",
    "FtrlOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float beta=3:float "
                            "initial_accumulator_value=4:float l1_regularization_strength=5:float "
                            "l2_regularization_strength=6:float warmup_steps=7:int64"),
    "GroupFtrlOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float beta=3:float "
                                 "initial_accumulator_value=4:float l1_regularization_strength=5:float "
                                 "l2_regularization_strength=6:float warmup_steps=7:int64"),
    "GroupAdaGradOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float beta=3:float "
                                    "initial_accumulator_value=4:float l2_regularization_strength=5:float "
                                    "weight_decay_factor=6:float warmup_steps=7:int64"),
    "AdadeltaOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float weight_decay_factor=3:float "
                                "averaging_ratio=4:float epsilon=5:float warmup_steps=7:int64"),
    "AdamOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float beta1=3:float beta2=4:float "
                            "use_beta1_warmup=5:bool weight_decay_factor=6:float use_nesterov=7:bool "
                            "epsilon=8:float warmup_steps=9:int64"),
    "AmsgradOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float beta1=3:float beta2=4:float "
                               "weight_decay_factor=6:float use_nesterov=7:bool epsilon=8:float "
                               "warmup_steps=9:int64"),
    "MomentumOptimizerConfig": ("dim_size=1:int32 learning_rate=2:float weight_decay_factor=3:float "
                                "use_nesterov=4:bool momentum=5:float warmup_steps=6:int64"),
    "MovingAverageOptimizerConfig": "dim_size=1:int32 momentum=2:float",
    "BatchSoftmaxOptimizerConfig": "dim_size=1:int32 learning_rate=2:float",
    "RmspropOptimizerConfig": "dim_size=1:int32 learning_rate=2:float weight_decay_factor=3:float momentum=4:float",
    "RmspropV2OptimizerConfig": "dim_size=1:int32 learning_rate=2:float weight_decay_factor=3:float momentum=4:float",
    "DcOptimizerConfig": "dim_size=1:int32 lambda_=2:float",
    "OptimizerConfig": (
        "adagrad=1:AdagradOptimizerConfig sgd=2:SgdOptimizerConfig ftrl=3:FtrlOptimizerConfig "
        "stochastic_rounding_float16=4:bool dynamic_wd_adagrad=5:DynamicWdAdagradOptimizerConfig "
        "adadelta=6:AdadeltaOptimizerConfig adam=7:AdamOptimizerConfig amsgrad=8:AmsgradOptimizerConfig "
        "momentum=9:MomentumOptimizerConfig moving_average=10:MovingAverageOptimizerConfig "
        "rmsprop=11:RmspropOptimizerConfig rmspropv2=12:RmspropV2OptimizerConfig dc=13:DcOptimizerConfig "
        "group_ftrl=14:GroupFtrlOptimizerConfig batch_softmax=15:BatchSoftmaxOptimizerConfig "
        "group_adagrad=16:GroupAdaGradOptimizerConfig"),
    # E.2 dumps
    "AdagradOptimizerDump": "*norm=1:float",
    "DynamicWdAdagradOptimizerDump": "*norm=1:float last_update_step=2:int64",
    "SgdOptimizerDump": "",
    "FtrlOptimizerDump": "*zero=1:float *norm=2:float",
    "GroupFtrlOptimizerDump": "*zero=1:float *norm=2:float",
    "GroupAdaGradOptimizerDump": "grad_square_sum=1:float",
    "AdadeltaOptimizerDump": "*accum=1:float *accum_update=2:float",
    "AdamOptimizerDump": "*m=1:float *v=2:float beta1_power=3:float beta2_power=4:float",
    "AmsgradOptimizerDump": "*m=1:float *v=2:float *vhat=3:float beta1_power=4:float beta2_power=5:float",
    "MomentumOptimizerDump": "*n=1:float",
    "BatchSoftmaxOptimizerDump": "global_step=1:int64",
    "RmspropOptimizerDump": "*n=1:float",
    "RmspropV2OptimizerDump": "*n=1:float",
    "SingleOptimizerDump": (
        "adagrad=1:AdagradOptimizerDump sgd=2:SgdOptimizerDump ftrl=3:FtrlOptimizerDump "
        "dynamic_wd_adagrad=4:DynamicWdAdagradOptimizerDump adadelta=6:AdadeltaOptimizerDump "
        "adam=7:AdamOptimizerDump amsgrad=8:AmsgradOptimizerDump momentum=9:MomentumOptimizerDump "
        "rmsprop=11:RmspropOptimizerDump rmspropv2=12:RmspropV2OptimizerDump "
        "group_ftrl=13:GroupFtrlOptimizerDump batch_softmax=14:BatchSoftmaxOptimizerDump "
        "group_adagrad=15:GroupAdaGradOptimizerDump"),
    "OptimizerDump": "*dump=1:SingleOptimizerDump",
    # E.1
    "EntryConfig": "*segments=1:Segment entry_type=2:EntryType",
    "EntryConfig.Segment": ("init_config=1:InitializerConfig opt_config=2:OptimizerConfig "
                            "comp_config=3:FloatCompressorConfig dim_size=7:int32"),
    "EntryDump": "id=1:sfixed64 *num=2:float opt=3:OptimizerDump last_update_ts_sec=4:int64",
    "SlotExpireTimeConfig": "*slot_expire_times=1:SlotExpireTime default_expire_time=2:uint32",
    "SlotExpireTimeConfig.SlotExpireTime": "slot=1:uint32 expire_time=2:uint32",
    "CuckooEmbeddingHashTableConfig": "",
    "EmbeddingHashTableConfig": (
        "entry_config=1:EntryConfig initial_capacity=2:uint64 slot_expire_time_config=3:SlotExpireTimeConfig "
        "cuckoo=5:CuckooEmbeddingHashTableConfig entry_type=6:EntryType enable_feature_eviction=7:bool "
        "feature_evict_every_n_hours=8:int32 skip_zero_embedding=10:bool"),
    "MultiEmbeddingHashTableConfig": "*names=1:string *configs=2:EmbeddingHashTableConfig",
    "SlotOccurrenceThresholdConfig": ("*slot_occurrence_thresholds=1:SlotOccurrenceThreshold "
                                      "default_occurrence_threshold=2:uint32"),
    "SlotOccurrenceThresholdConfig.SlotOccurrenceThreshold": "slot=1:uint32 occurrence_threshold=2:uint32",
    "SlidingHashFilterMetaDump": ("split_num=1:uint32 max_forward_step=2:uint32 max_backward_step=3:uint32 "
                                  "max_step=4:uint32 head=5:uint32 head_increment=6:uint32 "
                                  "failure_count=7:uint64"),
    "HashFilterSplitMetaDump": ("failure_count=1:uint64 total_size=2:uint64 num_elements=3:uint64 "
                                "fill_rate=4:double sliding_hash_filter_meta=5:SlidingHashFilterMetaDump"),
    "HashFilterSplitDataDump": "offset=1:uint32 *data=2:uint32",
    "MultiHashTableMetadata": "table_name=1:string num_entries=2:uint64",
    # E.5, E.6 (package monolith)
    "HashTableProto": ("table_tensor=1:string dim_size=2:int32 shared_name=3:string "
                       "slot_expire_time_config=4:bytes learning_rate_tensor=5:string saver_parallel=6:int32 "
                       "*extra_restore_names=7:string export_share_embedding=8:OptionalBool"),
    "MultiHashTableProto": ("*dims=1:int32 slot_expire_time_config=2:bytes *table_names=3:string "
                            "learning_rate_tensor=4:string shared_name=5:string saver_parallel=6:int32 "
                            "initializer_op=7:string handle_tensor=8:string"),
}

_SCALAR_TYPES = {
    FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32", FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FLOAT: "float", FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_BOOL: "bool", FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes", FieldDescriptor.TYPE_SFIXED64: "sfixed64",
}


def _all_messages():
    """{name relative to its package: descriptor} for every message in our files."""
    out = {}

    def walk(desc):
        pkg = desc.file.package
        out[desc.full_name[len(pkg) + 1:]] = desc
        for nested in desc.nested_types:
            walk(nested)

    for mod in MODULES:
        for desc in mod.DESCRIPTOR.message_types_by_name.values():
            walk(desc)
    return out


def _repeated(field) -> bool:
    # FieldDescriptor.label is gone in protobuf 7; is_repeated is missing from old runtimes.
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _describe(field) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        kind = field.message_type.name
    elif field.type == FieldDescriptor.TYPE_ENUM:
        kind = field.enum_type.name
    else:
        kind = _SCALAR_TYPES[field.type]
    star = "*" if _repeated(field) else ""
    return f"{star}{field.name}={field.number}:{kind}"


def test_schema_matches_spec_part_e():
    messages = _all_messages()
    assert set(messages) == set(SCHEMA)
    for name, desc in messages.items():
        got = sorted((_describe(f) for f in desc.fields), key=lambda s: int(s.split("=")[1].split(":")[0]))
        assert " ".join(got) == SCHEMA[name], name
        # proto2 everywhere, and no packed repeated scalars (Monolith's records are unpacked).
        for f in desc.fields:
            assert not f.GetOptions().packed, f.full_name


def test_packages_and_public_imports():
    for mod in (fc, ic, opt, eht):
        assert mod.DESCRIPTOR.package == "monolith.hash_table"
    assert hto.DESCRIPTOR.package == mhto.DESCRIPTOR.package == "monolith"
    fdp = descriptor_pb2.FileDescriptorProto.FromString(eht.DESCRIPTOR.serialized_pb)
    assert sorted(fdp.dependency[i] for i in fdp.public_dependency) == [
        "float_compressor.proto", "initializer_config.proto", "optimizer.proto"]
    # import public re-exports: every config/dump message is reachable from embedding_hash_table_pb2
    assert eht.AdamOptimizerDump is opt.AdamOptimizerDump
    assert eht.FloatCompressorConfig is fc.FloatCompressorConfig
    assert eht.RandomUniformInitializerConfig is ic.RandomUniformInitializerConfig


def test_enums():
    assert dict(eht.EntryConfig.EntryType.items()) == {"UNKNOWN": 0, "TRAINING": 1, "SERVING": 2}
    assert dict(eht.EmbeddingHashTableConfig.EntryType.items()) == {"PACKED": 1, "RAW": 2}
    assert list(hto.HashTableProto.OptionalBool.items()) == [("kBoolNone", -1), ("kFalse", 0), ("kTrue", 1)]


# ---------------------------------------------------------------------------------------------
# (c) defaults: every singular scalar/enum field of every message, non-zero ones listed here

NONZERO_DEFAULTS = {
    ("FloatCompressorConfig.FixedR8", "r"): 1.0,
    ("FloatCompressorConfig.OneBit", "step_size"): 200,
    ("FloatCompressorConfig.OneBit", "init_scale"): 1.0,
    ("FloatCompressorConfig.OneBit", "max_scale"): 10000.0,
    ("FloatCompressorConfig.OneBit", "amplitude"): f32(0.1),
    ("RandomUniformInitializerConfig", "minval"): f32(-0.05),
    ("RandomUniformInitializerConfig", "maxval"): f32(0.05),
    ("AdagradOptimizerConfig", "learning_rate"): f32(0.001),
    ("AdagradOptimizerConfig", "initial_accumulator_value"): f32(0.1),
    ("AdagradOptimizerConfig", "hessian_compression_times"): 1,
    ("DynamicWdAdagradOptimizerConfig", "learning_rate"): f32(0.001),
    ("DynamicWdAdagradOptimizerConfig", "initial_accumulator_value"): f32(0.1),
    ("DynamicWdAdagradOptimizerConfig", "hessian_compression_times"): 1,
    ("DynamicWdAdagradOptimizerConfig", "dynamic_wd_temperature"): 1.0,
    ("SgdOptimizerConfig", "learning_rate"): f32(0.01),
    ("FtrlOptimizerConfig", "learning_rate"): f32(0.01),
    ("FtrlOptimizerConfig", "initial_accumulator_value"): f32(0.1),
    ("GroupFtrlOptimizerConfig", "learning_rate"): f32(0.01),
    ("GroupFtrlOptimizerConfig", "beta"): 1.0,
    ("GroupAdaGradOptimizerConfig", "learning_rate"): f32(0.01),
    ("GroupAdaGradOptimizerConfig", "initial_accumulator_value"): f32(0.1),
    ("AdadeltaOptimizerConfig", "learning_rate"): f32(0.01),
    ("AdadeltaOptimizerConfig", "averaging_ratio"): f32(0.9),
    ("AdadeltaOptimizerConfig", "epsilon"): f32(0.01),
    ("AdamOptimizerConfig", "learning_rate"): f32(0.01),
    ("AdamOptimizerConfig", "beta1"): f32(0.9),
    ("AdamOptimizerConfig", "beta2"): f32(0.99),
    ("AdamOptimizerConfig", "epsilon"): f32(0.01),
    ("AmsgradOptimizerConfig", "learning_rate"): f32(0.01),
    ("AmsgradOptimizerConfig", "beta1"): f32(0.9),
    ("AmsgradOptimizerConfig", "beta2"): f32(0.99),
    ("AmsgradOptimizerConfig", "epsilon"): f32(0.01),
    ("MomentumOptimizerConfig", "learning_rate"): f32(0.01),
    ("MomentumOptimizerConfig", "momentum"): f32(0.9),
    ("MovingAverageOptimizerConfig", "momentum"): f32(0.9),
    ("BatchSoftmaxOptimizerConfig", "learning_rate"): f32(0.1),
    ("RmspropOptimizerConfig", "learning_rate"): f32(0.01),
    ("RmspropOptimizerConfig", "momentum"): f32(0.9),
    ("RmspropV2OptimizerConfig", "learning_rate"): f32(0.01),
    ("RmspropV2OptimizerConfig", "momentum"): f32(0.9),
    ("EntryConfig", "entry_type"): eht.EntryConfig.TRAINING,
    ("SlotExpireTimeConfig", "default_expire_time"): 36500,
    ("EmbeddingHashTableConfig", "initial_capacity"): 1,
    ("EmbeddingHashTableConfig", "entry_type"): eht.EmbeddingHashTableConfig.PACKED,
    ("EmbeddingHashTableConfig", "feature_evict_every_n_hours"): 240,
    ("HashTableProto", "export_share_embedding"): hto.HashTableProto.kBoolNone,
}


def test_every_default_matches_spec():
    messages = _all_messages()
    checked = set()
    for name, desc in messages.items():
        instance = message_factory.GetMessageClass(desc)()
        for f in desc.fields:
            if _repeated(f) or f.type == FieldDescriptor.TYPE_MESSAGE:
                continue
            expected = NONZERO_DEFAULTS.get((name, f.name))
            if expected is None:
                expected = {FieldDescriptor.TYPE_STRING: "", FieldDescriptor.TYPE_BYTES: b"",
                            FieldDescriptor.TYPE_BOOL: False, FieldDescriptor.TYPE_FLOAT: 0.0,
                            FieldDescriptor.TYPE_DOUBLE: 0.0}.get(f.type, 0)
            else:
                checked.add((name, f.name))
            got = getattr(instance, f.name)
            assert got == expected and type(got) is type(expected), f"{name}.{f.name}: {got!r}"
    assert checked == set(NONZERO_DEFAULTS)


def test_named_defaults():
    # The ones engines rely on, spelled out.
    assert eht.EmbeddingHashTableConfig().initial_capacity == 1
    assert eht.EmbeddingHashTableConfig().feature_evict_every_n_hours == 240
    assert eht.SlotExpireTimeConfig().default_expire_time == 36500
    assert hto.HashTableProto().export_share_embedding == hto.HashTableProto.kBoolNone
    assert not hto.HashTableProto().HasField("export_share_embedding")
    a = opt.AdagradOptimizerConfig()
    assert (a.learning_rate, a.initial_accumulator_value, a.hessian_compression_times,
            a.weight_decay_factor, a.warmup_steps) == (f32(0.001), f32(0.1), 1, 0.0, 0)
    ad = opt.AdamOptimizerConfig()
    assert (ad.beta1, ad.beta2, ad.epsilon, ad.use_beta1_warmup, ad.use_nesterov) == (
        f32(0.9), f32(0.99), f32(0.01), False, False)
    ob = fc.FloatCompressorConfig.OneBit()
    assert (ob.step_size, ob.init_scale, ob.max_scale, ob.amplitude) == (200, 1.0, 10000.0, f32(0.1))


def test_defaults_are_not_serialized():
    # proto2: an unset field with a default is absent on the wire; set explicitly, it is written.
    assert eht.EmbeddingHashTableConfig().SerializeToString() == b""
    assert eht.EmbeddingHashTableConfig(initial_capacity=1).SerializeToString() == h("10 01")


# ---------------------------------------------------------------------------------------------
# (d) oneofs

def _oneof(desc, name="type"):
    return {f.name: f.number for f in desc.oneofs_by_name[name].fields}


def test_optimizer_config_vs_dump_oneof_numbers():
    assert _oneof(opt.OptimizerConfig.DESCRIPTOR) == {
        "adagrad": 1, "sgd": 2, "ftrl": 3, "dynamic_wd_adagrad": 5, "adadelta": 6, "adam": 7,
        "amsgrad": 8, "momentum": 9, "moving_average": 10, "rmsprop": 11, "rmspropv2": 12,
        "dc": 13, "group_ftrl": 14, "batch_softmax": 15, "group_adagrad": 16}
    assert _oneof(opt.SingleOptimizerDump.DESCRIPTOR) == {
        "adagrad": 1, "sgd": 2, "ftrl": 3, "dynamic_wd_adagrad": 4, "adadelta": 6, "adam": 7,
        "amsgrad": 8, "momentum": 9, "rmsprop": 11, "rmspropv2": 12, "group_ftrl": 13,
        "batch_softmax": 14, "group_adagrad": 15}
    srf = opt.OptimizerConfig.DESCRIPTOR.fields_by_name["stochastic_rounding_float16"]
    assert srf.number == 4 and srf.containing_oneof is None


def test_other_oneofs():
    assert _oneof(ic.InitializerConfig.DESCRIPTOR) == {
        "zeros": 1, "random_uniform": 2, "ones": 3, "constants": 15}
    assert _oneof(fc.FloatCompressorConfig.DESCRIPTOR) == {
        "fp32": 1, "fp16": 2, "fixed_r8": 3, "one_bit": 4}
    assert _oneof(eht.EmbeddingHashTableConfig.DESCRIPTOR) == {"cuckoo": 5}


def test_oneof_members_are_exclusive():
    cfg = opt.OptimizerConfig()
    cfg.adagrad.learning_rate = 0.5
    cfg.sgd.SetInParent()
    assert cfg.WhichOneof("type") == "sgd" and not cfg.HasField("adagrad")
    cfg.stochastic_rounding_float16 = True  # outside the oneof: does not clear sgd
    assert cfg.WhichOneof("type") == "sgd"
