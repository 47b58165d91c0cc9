"""``precision: auto`` picks bf16 only where the CPU computes bf16 natively, and says why."""

import pytest
import torch

from mlestar.training import precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("amx, flags, expected, why", [
    (True, {"avx512_bf16", "avx2"}, "bf16", "AMX"),
    (False, {"avx512f", "avx512_bf16", "avx2"}, "bf16", "AVX-512 BF16"),
    (False, {"avx512f", "avx2"}, "fp32", "emulated"),
    (False, set(), "fp32", "emulated"),
])
def test_auto_on_the_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, amx: bool, flags: set[str],
                                             expected: str, why: str) -> None:
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: flags)
    chosen, reason = precision.choose_precision("auto", CPU)
    assert chosen == expected and why in reason


def test_native_bf16_names_the_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512_bf16"})
    assert precision.cpu_native_bf16() == "avx512_bf16"
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: True)
    assert precision.cpu_native_bf16() == "amx"
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2"})
    assert precision.cpu_native_bf16() is None


def test_a_set_precision_is_kept_and_fp16_on_the_cpu_becomes_bf16() -> None:
    assert precision.choose_precision("fp32", CPU) == ("fp32", "set in the config")
    assert precision.choose_precision("fp16", CPU)[0] == "bf16"


def test_this_machines_flags_are_read_from_proc_cpuinfo() -> None:
    flags = precision._cpu_flags()
    assert isinstance(flags, set)
    if flags:  # Linux: the flags line holds at least the baseline x86-64 or ARM features
        assert {"sse2", "fp", "asimd"} & flags
