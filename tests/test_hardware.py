"""Hardware detection: this GPU-less machine, and fake NVML libraries with one card, two cards and failures."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import run_cli

from gptwiz.planning import hardware
from gptwiz.planning.hardware import GiB, detect_hardware, read_gpu_stats
from gptwiz.planning.policy import resolve_device_dtype, training_dtype


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError (the real classes need the C library to format messages)."""


class FakeNVML:
    """The pynvml calls hardware.py makes, answering for the given cards."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, cards: list[dict], init_error: Exception | None = None, count_error: Exception | None = None):
        self.cards = cards
        self.init_error = init_error
        self.count_error = count_error
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error:
            raise self.count_error
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> dict:
        return self.cards[i]

    def nvmlDeviceGetName(self, h: dict) -> bytes:
        return h["name"].encode()  # older pynvml returns bytes

    def nvmlDeviceGetMemoryInfo(self, h: dict) -> SimpleNamespace:
        return SimpleNamespace(total=h["total"], free=h["free"], used=h["total"] - h["free"])

    def nvmlDeviceGetCudaComputeCapability(self, h: dict) -> tuple[int, int]:
        if "cc" not in h:
            raise FakeNVMLError("Not Supported")
        return h["cc"]

    def nvmlDeviceGetUtilizationRates(self, h: dict) -> SimpleNamespace:
        return SimpleNamespace(gpu=h.get("util", 0), memory=0)

    def nvmlDeviceGetTemperature(self, h: dict, sensor: int) -> int:
        if "temp" not in h:
            raise FakeNVMLError("Not Supported")
        return h["temp"]

    def nvmlDeviceGetPowerUsage(self, h: dict) -> int:
        return h.get("power_mw", 0)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: dict) -> int:
        return 400_000

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040


A100 = {"name": "NVIDIA A100-SXM4-40GB", "total": 40 * GiB, "free": 39 * GiB, "cc": (8, 0), "util": 87,
        "temp": 61, "power_mw": 251_500}
GTX1660 = {"name": "NVIDIA GeForce GTX 1660", "total": 6 * GiB, "free": 5 * GiB, "cc": (7, 5)}


def _nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


def test_this_machine_without_gpu_is_a_cpu_report() -> None:
    if _nvml_works():
        pytest.skip("this machine has an NVIDIA driver")
    report = detect_hardware()
    assert report.gpus == [] and report.gpu_count == 0 and report.vram_gb == 0
    assert report.nvml_error  # says why: no library or no driver
    assert report.cpu_count >= 1
    assert 0 < report.ram_available_bytes <= report.ram_total_bytes
    data = report.to_json()
    for key in ("gpus", "cpu_count", "ram_total_bytes", "ram_available_bytes", "cpu_bf16"):
        assert key in data


def test_one_fake_card() -> None:
    nvml = FakeNVML([A100])
    report = detect_hardware(nvml)
    assert report.gpu_count == 1 and report.nvml_error is None
    gpu = report.gpus[0]
    assert gpu.name == "NVIDIA A100-SXM4-40GB"
    assert gpu.memory_total_bytes == 40 * GiB and gpu.memory_free_bytes == 39 * GiB
    assert gpu.compute_capability == "8.0" and gpu.bf16
    assert report.vram_gb == 40
    assert report.driver_version == "550.54.15" and report.cuda_version == "12.4"
    assert nvml.shutdowns == 1
    assert json.loads(json.dumps(report.to_json()))["gpus"][0]["memory_total_bytes"] == 40 * GiB
    assert training_dtype(report, "cuda") == "bfloat16"


def test_two_fake_cards_use_the_smaller_one() -> None:
    report = detect_hardware(FakeNVML([A100, GTX1660]))
    assert report.gpu_count == 2
    assert report.vram_gb == 6
    assert not report.gpus[1].bf16  # Turing has no bf16: training would use float16
    assert training_dtype(report, "cuda") == "float16"
    assert any("smallest" in w for w in report.warnings)


def test_card_without_compute_capability() -> None:
    card = {k: v for k, v in GTX1660.items() if k != "cc"}
    gpu = detect_hardware(FakeNVML([card])).gpus[0]
    assert gpu.compute_capability is None and not gpu.bf16


@pytest.mark.parametrize("nvml", [
    FakeNVML([], init_error=FakeNVMLError("Driver Not Loaded")),
    FakeNVML([A100], count_error=FakeNVMLError("Unknown Error")),
])
def test_nvml_failures_give_a_cpu_report(nvml: FakeNVML) -> None:
    report = detect_hardware(nvml)
    assert report.gpus == [] and report.vram_gb == 0
    assert "NVML" in report.nvml_error or "driver" in report.nvml_error
    assert report.cpu_count >= 1 and report.ram_total_bytes > 0


def test_real_pynvml_error_class_is_handled() -> None:
    pynvml = pytest.importorskip("pynvml")
    report = detect_hardware(FakeNVML([], init_error=pynvml.NVMLError_LibraryNotFound()))
    assert report.gpus == [] and report.nvml_error


def test_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pynvml() -> None:
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(hardware, "_load_nvml", no_pynvml)
    report = detect_hardware()
    assert report.gpus == [] and "not installed" in report.nvml_error
    assert read_gpu_stats() == []


def test_gpu_stats() -> None:
    stats = read_gpu_stats(FakeNVML([A100, GTX1660]))
    assert [s.index for s in stats] == [0, 1]
    a100, gtx = stats
    assert a100.memory_used_bytes == 1 * GiB and a100.memory_total_bytes == 40 * GiB
    assert a100.utilization_percent == 87 and a100.temperature_c == 61
    assert a100.power_w == pytest.approx(251.5) and a100.power_limit_w == pytest.approx(400)
    assert gtx.temperature_c is None  # not supported by that (fake) card: None, not a crash


def test_gpu_stats_without_nvml() -> None:
    assert read_gpu_stats(FakeNVML([], init_error=FakeNVMLError("Driver Not Loaded"))) == []
    assert read_gpu_stats(FakeNVML([A100], count_error=FakeNVMLError("GPU is lost"))) == []


def test_cpu_info_reads_flags(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert hardware.cpu_info(str(info)) == ("Test CPU 9000", True)
    info.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse avx2\n")
    assert hardware.cpu_info(str(info)) == ("Old CPU", False)
    assert hardware.cpu_info(str(tmp_path / "missing")) == ("unknown CPU", False)
    info.write_text("processor\t: 0\nmodel name\t: AMX CPU\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert hardware.cpu_info(str(info)) == ("AMX CPU", True)
    assert hardware.AMX_FLAG in hardware.cpu_flags(str(info)) and "amx" not in hardware.cpu_flags(str(info))
    assert hardware.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_auto_dtype_matches_the_trainer() -> None:
    """`gptwiz estimate --dtype auto` must pick what `gptwiz train --dtype auto` picks, without torch."""
    from gptwiz.training.device import resolve_dtype

    report = detect_hardware()
    device_type, dtype = resolve_device_dtype(report, "auto", "auto")
    assert dtype == resolve_dtype("auto", "cuda" if device_type == "cuda" else "cpu")


def test_hardware_cli_json(tmp_path) -> None:
    proc = run_cli(["hardware", "--json"], cwd=tmp_path, check=True)
    data = json.loads(proc.stdout)
    for key in ("gpus", "cpu_count", "ram_total_bytes", "ram_available_bytes"):
        assert key in data
    if not _nvml_works():
        assert data["gpus"] == []
    proc = run_cli(["hardware"], cwd=tmp_path, check=True)
    assert "RAM" in proc.stdout and "CPU" in proc.stdout


def test_every_front_end_plans_a_cpu_run_against_one_ram_figure(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The wizard said "of 23.5 GiB" (the total) where `gptwiz recommend` said "of 20.5 GiB" (what was available)
    on the same machine: every front-end now takes training_ram_bytes, the RAM available."""
    import psutil

    from gptwiz.cli import plan
    from gptwiz.planning.hardware import HardwareReport, training_ram_bytes
    from gptwiz.training.probe.memory import device_total
    from gptwiz.wizard.services import recommend_for
    from gptwiz.wizard.state import WizardState

    report = HardwareReport(gpus=[], cpu_count=2, cpu_name="cpu", ram_total_bytes=24 * GiB,
                            ram_available_bytes=20 * GiB, cpu_bf16=False)
    assert training_ram_bytes(report) == 20 * GiB
    # The wizard's memory bar and its recommendation (the app and plain mode share them).
    state = WizardState(use_case="testing", hardware=report)
    assert state.device_memory_bytes() == 20 * GiB
    assert recommend_for(state).memory_bytes == 20 * GiB
    # `gptwiz recommend` on the same machine.
    monkeypatch.setattr(plan, "detect_hardware", lambda: report)
    monkeypatch.setattr(plan, "measured_throughput", lambda *a: None)  # no speed measured: not needed here
    assert plan.run_recommend("testing", None, None, None, None, "m", as_json=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["memory_bytes"] == 20 * GiB and "of the 20 GiB of RAM available" in " ".join(out["reasons"])
    # The probe's share of memory, read when its child has ended.
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=24 * GiB, available=20 * GiB))
    assert device_total("cpu", {}) == training_ram_bytes() == 20 * GiB
