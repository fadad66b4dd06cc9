"""Target selection per device, overrides, and the reasons it gives."""
from __future__ import annotations

import pytest

from deepfake_sdk import device
from deepfake_sdk.device import DeviceInfo, preference, select_target
import torch

from deepfake_sdk.errors import MissingDependencyError, UsageError
from deepfake_sdk.verification.parity import reference_device, strict_fp32


def test_preference_orders():
    # only targets in the table are listed; the table grows with issue 3
    mac = preference(DeviceInfo("Darwin", "arm64", "Apple", 8))
    intel = preference(DeviceInfo("Linux", "x86_64", "GenuineIntel", 8))
    assert set(mac) == set(intel) and "onnx" in mac


def test_env_and_argument_override(monkeypatch):
    monkeypatch.setenv("DEEPFAKE_SDK_TARGET", "onnx")
    sel = select_target("int8")
    assert sel.target == "onnx" and "DEEPFAKE_SDK_TARGET" in sel.reason
    assert "target=" in select_target("int8", "onnx").reason
    with pytest.raises(ValueError, match="unknown target"):
        select_target("int8", "bogus")


def test_fallback_and_no_runtime_installed(monkeypatch):
    from deepfake_sdk.runtimes.base import runtime_class
    from deepfake_sdk.targets import TARGETS

    monkeypatch.delenv("DEEPFAKE_SDK_TARGET", raising=False)
    order = [t for t in preference(device.device_info()) if "int8" in TARGETS[t].precisions]
    missing = classmethod(lambda cls: False)
    monkeypatch.setattr(runtime_class(order[0]), "is_available", missing)
    if len(order) > 1 and runtime_class(order[1]).is_available():
        sel = select_target("int8")
        assert sel.target == order[1] and f"skipped {order[0]}" in sel.reason
    for name in order:
        monkeypatch.setattr(runtime_class(name), "is_available", missing)
    with pytest.raises(MissingDependencyError, match="runtime not installed"):
        select_target("int8")


def test_device_info_reads_this_machine():
    info = device.device_info()
    assert info.system and info.machine and info.cpus >= 1


def _available_in_order(monkeypatch, info):
    """Every int8 target available, in ``info``'s order (so the test runs alike on any CPU)."""
    from deepfake_sdk.runtimes.base import runtime_class
    from deepfake_sdk.targets import TARGETS

    order = [t for t in preference(info) if "int8" in TARGETS[t].precisions]
    for name in order:
        monkeypatch.setattr(runtime_class(name), "is_available", classmethod(lambda cls: True))
    return order


@pytest.mark.parametrize("cpu_class_flags", [frozenset({"avx2"}), frozenset({"avx2", "avx512_vnni"}),
                                             frozenset({"avx2", "avx512_vnni", "amx_tile", "amx_int8"})])
def test_recorded_drift_is_passed_over_and_said(monkeypatch, cpu_class_flags):
    monkeypatch.delenv("DEEPFAKE_SDK_TARGET", raising=False)
    info = DeviceInfo("Linux", "x86_64", "GenuineIntel", 2, cpu_class_flags)
    order = _available_in_order(monkeypatch, info)
    drift = {order[0]: "DRIFT: flip_rate"}
    sel = select_target("int8", info=info, drifting=drift)
    assert sel.target == order[1]
    assert f"skipped {order[0]} (recorded DRIFT: flip_rate)" in sel.reason and "without recorded drift" in sel.reason
    assert select_target("int8", order[0], info=info, drifting=drift).target == order[0], "a request is obeyed"
    everywhere = {name: "DRIFT: pearson" for name in order}
    sel = select_target("int8", info=info, drifting=everywhere)
    assert sel.target == order[0] and "every available target has recorded drift" in sel.reason
    assert select_target("int8", info=info, drifting={}).target == order[0]


def test_recorded_drift_reads_the_numerics_record(tmp_path, monkeypatch):
    import json
    from dataclasses import replace

    from deepfake_sdk import zoo

    spec = zoo.get_spec("gend-dinov2-s14-int8")
    family = replace(zoo.get_family(spec.family), folder=tmp_path)
    monkeypatch.setitem(zoo._FAMILIES, spec.family, family)
    assert zoo.recorded_drift(spec) == {}, "no record: nothing known to drift"
    (tmp_path / "numerics").mkdir()
    rows = [{"target": "tflite", "precision": "int8", "status": "DRIFT: flip_rate"},
            {"target": "tflite", "precision": "fp32", "status": "DRIFT: pearson"},
            {"target": "onnx", "precision": "int8", "status": "pass"}]
    family.numerics_record(spec.base_name).write_text(json.dumps({"rows": rows}))
    assert zoo.recorded_drift(spec) == {"tflite": "DRIFT: flip_rate"}
    family.numerics_record(spec.base_name).write_text("{not json")
    assert zoo.recorded_drift(spec) == {}


# --- where the full-precision reference runs (no GPU needed: CUDA's presence is a parameter) ---

def test_reference_runs_on_cuda_when_a_gpu_is_present_and_on_cpu_otherwise():
    assert reference_device(None, cuda_available=True).type == "cuda"
    assert reference_device(None, cuda_available=False).type == "cpu"
    assert reference_device("cpu", cuda_available=True).type == "cpu"  # asked for: honoured
    assert reference_device("cuda:1", cuda_available=True).index == 1


def test_a_gpu_asked_for_and_absent_is_a_usage_error_not_a_cpu_run():
    with pytest.raises(UsageError, match="torch sees none"):
        reference_device("cuda", cuda_available=False)
    with pytest.raises(UsageError, match="not a torch device"):
        reference_device("gpu0", cuda_available=True)
    with pytest.raises(UsageError, match="cpu or cuda"):
        reference_device("meta", cuda_available=True)


def test_reference_turns_tf32_off_and_restores_it():
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with strict_fp32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False


def test_a_one_shot_call_takes_the_runtime_that_answers_first_when_its_steady_speed_is_close(monkeypatch):
    """Where a class's start-up is measured, prefer='first-answer' trades a little steady speed
    (within ONE_SHOT_STEADY_SLACK) for an earlier first answer; drift still rules targets out and
    a much slower steady runtime is never taken."""
    from dataclasses import replace

    from deepfake_sdk.runtimes.base import runtime_class

    monkeypatch.delenv("DEEPFAKE_SDK_TARGET", raising=False)
    info = DeviceInfo("Linux", "x86_64", "AuthenticAMD", 2, frozenset({"avx2"}))
    for name in ("onnx", "openvino", "executorch", "tflite"):
        monkeypatch.setattr(runtime_class(name), "is_available", classmethod(lambda cls: True))
    order = device.SPEED_ORDER["avx2"]
    startup = {"tflite": device.Startup(4.0, 60.0), "executorch": device.Startup(1.5, 80.0),
               "onnx": device.Startup(1.0, 200.0), "openvino": device.Startup(3.0, 70.0)}
    monkeypatch.setitem(device.SPEED_ORDER, "avx2", replace(order, startup=startup, startup_evidence="test"))
    assert select_target("int8", info=info).target == "tflite", "throughput keeps the steady order"
    one_shot = select_target("int8", info=info, prefer="first-answer")
    assert one_shot.target == "executorch" and "one-shot" in one_shot.reason and "1.5 s" in one_shot.reason
    assert select_target("int8", info=info, prefer="first-answer", drifting={"executorch": "DRIFT"}).target == "openvino"
    monkeypatch.setitem(device.SPEED_ORDER, "avx2", replace(order, startup={}))
    assert select_target("int8", info=info, prefer="first-answer").target == "tflite", "unmeasured: the order decides"
    with pytest.raises(UsageError, match="prefer must be one of"):
        select_target("int8", info=info, prefer="fastest")
