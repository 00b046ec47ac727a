"""Planning for a named GPU this machine lacks: the card table, --gpu on estimate and recommend, the card list,
and the wizard's hardware step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptwiz.common.errors import UsageError
from gptwiz.planning.gpus import CARDS, EFFICIENCY, card_throughput, efficiency, find_card
from gptwiz.planning.hardware import HardwareReport
from gptwiz.planning.presets import load_preset
from gptwiz.planning.timing import predict_run_time, preset_plan
from gptwiz.wizard.flow import next_step
from gptwiz.wizard.services import (
    THIS_MACHINE,
    apply_hardware_answer,
    device_and_dtype,
    gpu_choices,
    parse_hardware_answer,
    recommend_for,
    throughput_for,
    times_for,
)
from gptwiz.wizard.state import DatasetChoice, WizardState

CPU_ONLY = HardwareReport(gpus=[], cpu_count=2, cpu_name="cpu", ram_total_bytes=8 * 2**30,
                          ram_available_bytes=6 * 2**30, cpu_bf16=False)


def gptwiz(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "gptwiz", *args], capture_output=True, text=True, env=env,
                          timeout=120)


# --- the table -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,key", [("3090", "rtx-3090"), ("rtx-3090", "rtx-3090"), ("RTX 3090", "rtx-3090"),
                                      ("rtx_4090", "rtx-4090"), ("a100-80gb", "a100-80gb"), ("A100 40GB", "a100-40gb"),
                                      ("h100", "h100"), ("H100-SXM", "h100"), ("h100-pcie", "h100-pcie"),
                                      ("h200", "h200"), ("T4", "t4"), ("a10", "a10"), ("L4", "l4"),
                                      ("3060", "rtx-3060")])
def test_names_match_forgivingly(name: str, key: str) -> None:
    assert find_card(name).key == key


def test_an_unknown_or_ambiguous_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown GPU 'gtx-9999'.*rtx-3090"):
        find_card("gtx-9999")
    with pytest.raises(UsageError, match="a100-40gb, a100-80gb"):
        find_card("a100")


@pytest.mark.parametrize("card", CARDS, ids=[c.key for c in CARDS])
def test_the_figures_are_sane(card) -> None:
    assert card.fp16_tflops >= card.fp32_tflops > 0
    assert card.bf16_tflops is None or card.bf16_tflops >= card.fp32_tflops
    assert card.bandwidth_gbs > 0 and card.source
    # The memory in the name, where it has one; else the size each is sold with.
    sold = {"t4": 16, "rtx-3090": 24, "rtx-4090": 24, "a10": 24, "l4": 24, "h100": 80, "h100-pcie": 80, "h200": 141}
    in_name = [int(part.removesuffix("gb")) for part in card.key.split("-") + card.name.lower().split()
               if part.endswith("gb") and part[:-2].isdigit()]
    assert card.memory_gb == (in_name[0] if in_name else sold[card.key])
    assert card.dtype == ("float16" if card.key == "t4" else "bfloat16")


def test_the_efficiency_prior_grows_with_width_and_is_a_fraction() -> None:
    a100, h100 = find_card("a100-80gb"), find_card("h100")
    assert efficiency(a100, 192) == EFFICIENCY[0][1] and efficiency(a100, 1280) == EFFICIENCY[-1][1]
    assert efficiency(a100, 384) < efficiency(a100, 512) < efficiency(a100, 768)
    assert 0 < efficiency(h100, 768) < efficiency(a100, 768) < 1


def test_a_prior_throughput_predicts_peak_times_efficiency() -> None:
    card = find_card("3090")
    plan = preset_plan(load_preset("150M"), device_type="cuda", dtype="bfloat16", max_iters=10_000)
    run = predict_run_time(plan, card_throughput(card))
    from gptwiz.model.config import training_flops_per_token
    assert run.tokens_per_sec == pytest.approx(71e12 * efficiency(card, 768) / training_flops_per_token(plan.model))
    assert run.basis.startswith("prior, no RTX 3090 measured: RTX 3090 data-sheet bfloat16 peak 71 TFLOP/s")


# --- the command line ----------------------------------------------------------------------------------

def test_estimate_with_gpu_gives_a_time_labelled_as_a_prior() -> None:
    out = gptwiz("estimate", "--config_file", "150M", "--gpu", "3090", "--max_iters", "10000", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device_type"] == "cuda" and data["dtype"] == "bfloat16"
    assert data["time"]["basis"].startswith("prior, no RTX 3090 measured") and data["time"]["seconds"] > 0
    assert data["probe_time"]["basis"].startswith("prior")
    gpu = data["gpu"]
    assert (gpu["name"], gpu["memory_gb"], gpu["peak_tflops"], gpu["estimate_fits"]) == ("RTX 3090", 24, 71, True)
    assert gpu["efficiency"] == pytest.approx(0.29) and "nanoGPT" in gpu["efficiency_source"] and gpu["source"]
    text = gptwiz("estimate", "--config_file", "tiny", "--gpu", "t4")
    assert text.returncode == 0, text.stderr
    assert "prior, no T4 measured" in text.stdout and "float16" in text.stdout


@pytest.mark.parametrize("args,fragment", [
    (["estimate", "--config_file", "tiny", "--gpu", "gtx-9999"], "unknown GPU 'gtx-9999' (valid: t4, rtx-3060"),
    (["estimate", "--config_file", "tiny", "--gpu", "t4", "--dtype", "bfloat16"], "the T4 has no bf16"),
    (["estimate", "--config_file", "tiny", "--gpu", "3090", "--device", "cpu"], "plans for a CUDA card"),
    (["recommend", "--use-case", "chat", "--gpu", "nope"], "unknown GPU 'nope'"),
    (["recommend", "--use-case", "chat", "--gpu", "3090", "--vram-gb", "0"], "--vram-gb 0"),
])
def test_bad_gpu_is_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    out = gptwiz(*args)
    assert out.returncode == 2 and fragment in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_recommend_with_gpu_picks_by_the_cards_memory() -> None:
    small = json.loads(gptwiz("recommend", "--use-case", "code", "--gpu", "3060", "--json").stdout)
    big = json.loads(gptwiz("recommend", "--use-case", "code", "--gpu", "a100-80gb", "--json").stdout)
    assert small["gpu"]["name"] == "RTX 3060 12GB" and big["gpu"]["memory_gb"] == 80
    assert any("12 GB card" in r for r in small["reasons"]) and any("80 GB card" in r for r in big["reasons"])
    assert small["preset"] != "750M_1024" and big["preset"] == "750M_1024"
    assert small["run_time"]["basis"].startswith("prior, no RTX 3060 12GB measured")
    assert any("on the A100 80GB (a prior, not measured)" in r for r in big["reasons"])
    # An explicit --vram-gb wins over the card's memory; the card still gives the dtype and the time.
    wins = json.loads(gptwiz("recommend", "--use-case", "code", "--gpu", "a100-80gb", "--vram-gb", "12",
                             "--json").stdout)
    assert any("12 GB card" in r for r in wins["reasons"]) and wins["run_time"]["basis"].startswith("prior")


def test_hardware_gpus_lists_the_cards() -> None:
    out = gptwiz("hardware", "--gpus", "--json")
    assert out.returncode == 0, out.stderr
    assert [c["key"] for c in json.loads(out.stdout)] == [c.key for c in CARDS]
    text = gptwiz("hardware", "--gpus")
    assert text.returncode == 0 and "RTX 3090" in text.stdout and "GA102" in text.stdout and "none" in text.stdout


# --- the wizard ----------------------------------------------------------------------------------------

def test_the_hardware_step_offers_the_cards_and_a_pick_carries_to_the_recommendation(tmp_path: Path) -> None:
    choices = gpu_choices()
    assert choices[0][0] == THIS_MACHINE and [k for k, _ in choices[1:]] == [c.key for c in CARDS]
    assert parse_hardware_answer("") == (None, None) and parse_hardware_answer("24") == (24.0, None)
    assert parse_hardware_answer("RTX 3090") == (None, "rtx-3090")
    with pytest.raises(ValueError):
        parse_hardware_answer("gtx-9999")

    state = WizardState(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", use_case="rag", hardware=CPU_ONLY)
    assert next_step("use_case", state) == "hardware"
    apply_hardware_answer(state, "a100-80gb")
    assert (state.vram_gb, state.gpu_count, device_and_dtype(state)) == (80.0, 1, ("cuda", "bfloat16"))
    state.dataset = DatasetChoice("input_file", "notes.txt", 1, 2_000_000_000)
    assert next_step("hardware", state) == "dataset" and next_step("dataset", state) == "recommendation"
    measured: list[tuple[str, str]] = []
    throughput = throughput_for(state, lambda d, t: measured.append((d, t)))
    assert not measured and throughput.prior == "A100 80GB"  # a prior: nothing measured on this CPU machine
    rec = recommend_for(state, throughput)
    assert rec.vram_gb == 80 and rec.device_type == "cuda" and rec.preset == "350M_1024"
    assert rec.run_time is not None and rec.run_time.basis.startswith("prior, no A100 80GB measured")
    times = times_for(rec.knobs, state, throughput)
    assert times is not None and "a prior for the A100 80GB" in times.label
    # Back to this machine: no card, the detected CPU, and the measuring function asked again.
    apply_hardware_answer(state, "")
    assert state.planned_gpu is None and not state.on_gpu
    throughput_for(state, lambda d, t: measured.append((d, t)))
    assert measured == [("cpu", "float32")]
