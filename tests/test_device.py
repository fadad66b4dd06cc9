"""Target selection per device, overrides, and the reasons it gives."""
from __future__ import annotations

import pytest

from deepfake_sdk import device
from deepfake_sdk.device import DeviceInfo, preference, select_target
from deepfake_sdk.errors import MissingDependencyError


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
