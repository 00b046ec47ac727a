"""Time predicted before anything runs (gptwiz.planning.timing) and the speed measurement it starts from
(gptwiz.training.throughput): the FLOP count, the schedule of evaluations, compile and checkpoints, the probe's
rate, the cache, and `gptwiz estimate`'s time."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_one_line_error, cli_env, run_cli

from gptwiz.common.errors import UsageError
from gptwiz.common.schedule import FIRST_EVAL_ITERS, eval_batch_share
from gptwiz.model.config import count_params, training_flops_per_token
from gptwiz.planning.fixed_costs import (
    COMPILE_EVAL_SHARE,
    COMPILE_S,
    COMPILE_S_PER_LAYER,
    START_AFTER_IMPORT_S,
    START_S_PER_PARAM,
    STARTUP_S,
    compile_seconds,
)
from gptwiz.planning.presets import load_preset
from gptwiz.planning.timing import (
    COST_MODEL,
    Throughput,
    cost_model,
    from_probe_rate,
    iters_within,
    predict_probe_time,
    predict_run_time,
    predicted_tokens_per_sec,
    preset_plan,
    token_cost_terms,
)

WIDTHS = (192, 384, 768, 1024, 1280)


def throughput(device_type: str = "cpu", dtype: str = "float32", scale: float = 1.0) -> Throughput:
    """A fixed machine: the 2-core CPU's float32 speeds on a quiet moment, `scale` times faster."""
    return Throughput(device_type=device_type, dtype=dtype, head=tuple((w, 280e9 * scale) for w in WIDTHS),
                      layer=tuple((w, 320e9 * scale) for w in WIDTHS), vocab_s=1.5e-9 / scale,
                      elementwise_s=2.2e-9 / scale, threads=2, source="test")


def test_flops_per_token_is_the_models_own_count() -> None:
    import torch

    from gptwiz.model.gpt import GPT

    for name in ("tiny", "small", "150M_1024"):
        cfg = load_preset(name).model
        with torch.device("meta"):
            model = GPT(cfg)
        n = model.num_params() - model.transformer.wpe.weight.numel()
        assert training_flops_per_token(cfg) == model.flops_per_token() == 6 * n + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


def test_the_parts_add_up_and_follow_the_trainers_schedule() -> None:
    tiny = load_preset("tiny")  # eval_interval 250, eval_iters 20
    plan = preset_plan(tiny, device_type="cpu", dtype="float32", batch_size=8, max_iters=500)
    t = predict_run_time(plan, throughput())
    assert t.seconds == pytest.approx(t.train_s + t.eval_s + t.checkpoint_s + t.startup_s)
    assert t.iters == 500 and t.train_s == pytest.approx(500 * t.step_s)
    assert t.step_s == pytest.approx(8 * 256 / t.tokens_per_sec)
    # Evaluations at 0 (a few batches), 250 and 500: forward passes, a third of a micro-step each, on two splits.
    batches = FIRST_EVAL_ITERS + 2 * plan.eval_iters
    assert t.eval_s == pytest.approx(2 * batches * t.step_s * eval_batch_share("cpu", "float32"))
    # One more iteration: an evaluation more (the last one is off the schedule).
    longer = predict_run_time(preset_plan(tiny, device_type="cpu", dtype="float32", batch_size=8, max_iters=510),
                              throughput())
    assert longer.eval_s == pytest.approx((2 * (batches + plan.eval_iters)) * t.step_s * eval_batch_share("cpu", "float32"))
    assert not t.compiled and t.startup_s == STARTUP_S["cpu"]
    assert json.loads(json.dumps(t.to_json())).keys() >= {"seconds", "tokens_per_sec", "basis", "eval_s",
                                                          "checkpoint_s", "startup_s", "step_s"}


def test_a_measured_import_time_is_the_runs_start_where_there_is_one() -> None:
    """The start is the machine's measured import time plus the model's build, not the constant: on a machine that
    imports in 1 s, the constant's 6 s made short runs' predictions twice their length."""
    small = load_preset("small")
    plan = preset_plan(small, device_type="cpu", dtype="bfloat16", batch_size=2, max_iters=20)
    measured = replace(throughput(dtype="bfloat16"), start_s=1.0)
    t = predict_run_time(plan, measured)
    assert t.startup_s == pytest.approx(1.0 + START_AFTER_IMPORT_S["cpu"] + START_S_PER_PARAM * count_params(small.model))
    assert 1.5 < t.startup_s < STARTUP_S["cpu"]
    assert predict_run_time(plan, throughput(dtype="bfloat16")).startup_s == STARTUP_S["cpu"]  # none measured
    long = replace(plan, max_iters=5000)
    assert predict_run_time(long, measured).startup_s == pytest.approx(
        t.startup_s + compile_seconds("cpu", small.model.n_layer))  # a compiled run still pays its compilation
    rate = t.tokens_per_sec
    assert from_probe_rate(plan, rate, 1.0).seconds == pytest.approx(t.seconds)
    assert from_probe_rate(plan, rate).seconds == pytest.approx(t.seconds - t.startup_s + STARTUP_S["cpu"])
    assert Throughput.from_json(json.loads(json.dumps(measured.to_json()))) == measured
    with pytest.raises(ValueError):
        Throughput.from_json({**measured.to_json(), "start_s": -1})


def test_the_import_time_is_measured_in_a_fresh_interpreter_and_cached(tmp_path: Path, monkeypatch) -> None:
    from gptwiz.training import throughput as tp

    start = tp.start_seconds()
    assert 0.05 < start < 60  # a real child process importing torch and the trainer
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tp.measured_start_s("cpu", "float32") == 0.0  # nothing cached: nothing measured for it
    key = tp.machine_key("cpu", "float32")
    (tmp_path / "gptwiz").mkdir()
    (tmp_path / "gptwiz" / "throughput.json").write_text(json.dumps({key: replace(throughput(), start_s=start).to_json()}))
    assert tp.measured_start_s("cpu", "float32") == start
    assert tp.best_of(replace(throughput(), start_s=2.0), replace(throughput(), start_s=0.0)).start_s == 2.0
    assert tp.best_of(replace(throughput(), start_s=2.0), replace(throughput(), start_s=1.5)).start_s == 1.5


def test_short_runs_evaluate_as_the_trainer_caps_them() -> None:
    plan = preset_plan(load_preset("small"), device_type="cpu", dtype="float32", max_iters=30)
    assert plan.eval_iters == 15 and plan.first_eval_iters == FIRST_EVAL_ITERS  # capped_eval_iters: 30 // 2


def test_the_plan_evaluates_as_the_trainer_will() -> None:
    from gptwiz.training.options import capped_eval_iters

    for name, iters in (("tiny", 40), ("small", 600), ("150M", 20)):
        preset = load_preset(name)
        plan = preset_plan(preset, device_type="cpu", dtype="float32", max_iters=iters)
        train = dataclasses.replace(preset.train, max_iters=iters)
        assert plan.eval_iters == capped_eval_iters(train)


def test_compile_time_follows_the_trainers_choice() -> None:
    small = load_preset("small")
    long_bf16 = predict_run_time(preset_plan(small, device_type="cpu", dtype="bfloat16", max_iters=2000),
                                 throughput(dtype="bfloat16"))
    short_bf16 = predict_run_time(preset_plan(small, device_type="cpu", dtype="bfloat16", max_iters=200),
                                  throughput(dtype="bfloat16"))
    fp32 = predict_run_time(preset_plan(small, device_type="cpu", dtype="float32", max_iters=2000), throughput())
    whole = COMPILE_S["cpu"] + COMPILE_S_PER_LAYER["cpu"] * small.model.n_layer  # 35 s: both graphs of 12 layers
    assert long_bf16.compiled and long_bf16.startup_s == pytest.approx(STARTUP_S["cpu"] + whole)
    assert not short_bf16.compiled and not fp32.compiled
    forced = predict_run_time(preset_plan(small, device_type="cpu", dtype="float32", max_iters=100, compiled=True),
                              throughput())
    assert forced.compiled
    # A probe compiles the training step only; the run after it loads that from inductor's cache and compiles the
    # evaluation's graph.
    plan = preset_plan(small, device_type="cpu", dtype="bfloat16", max_iters=2000)
    probe = predict_probe_time(plan, throughput(dtype="bfloat16"))
    after = from_probe_rate(plan, long_bf16.tokens_per_sec)
    assert probe.startup_s == pytest.approx(STARTUP_S["cpu"] + whole * (1 - COMPILE_EVAL_SHARE))
    assert after.startup_s == pytest.approx(STARTUP_S["cpu"] + whole * COMPILE_EVAL_SHARE)
    assert after.seconds < long_bf16.seconds


def test_bigger_work_takes_longer_and_a_faster_machine_less() -> None:
    tiny, small = load_preset("tiny"), load_preset("small")

    def secs(preset, scale=1.0, **kw):
        return predict_run_time(preset_plan(preset, device_type="cpu", dtype="float32", **kw), throughput(scale=scale)).seconds

    assert secs(tiny, batch_size=8, max_iters=400) < secs(tiny, batch_size=16, max_iters=400)
    assert secs(tiny, batch_size=8, max_iters=400) < secs(tiny, batch_size=8, max_iters=800)
    assert secs(tiny, batch_size=8, max_iters=400) < secs(small, batch_size=8, max_iters=400)
    assert secs(small, scale=2.0, batch_size=8, max_iters=400) < secs(small, batch_size=8, max_iters=400)


def test_several_cards_share_the_tokens() -> None:
    p = load_preset("150M")
    one = preset_plan(p, device_type="cuda", dtype="bfloat16")
    four = replace(one, gpu_count=4)
    speed = throughput("cuda", "bfloat16", scale=100)
    assert predicted_tokens_per_sec(four, speed) == pytest.approx(4 * predicted_tokens_per_sec(one, speed))


def test_the_probe_runs_100_iterations_without_evaluations_or_checkpoints() -> None:
    plan = preset_plan(load_preset("tiny"), device_type="cpu", dtype="float32", batch_size=8)
    probe = predict_probe_time(plan, throughput())
    assert probe.iters == 100 and probe.eval_s == 0 and probe.checkpoint_s == 0
    assert probe.seconds == pytest.approx(100 * probe.step_s + probe.startup_s)


def test_a_run_shorter_than_the_probe_is_its_own_probe() -> None:
    from gptwiz.planning.policy import probe_iters
    from gptwiz.planning.render import time_lines

    assert (probe_iters(5000), probe_iters(60), probe_iters(None), probe_iters(60, 20)) == (100, 60, 100, 20)
    plan = preset_plan(load_preset("tiny"), device_type="cpu", dtype="float32", batch_size=8, max_iters=60)
    run, probe = predict_run_time(plan, throughput()), predict_probe_time(plan, throughput())
    assert probe.iters == 60
    text = time_lines(run, probe, 60, "cpu").plain
    assert "100-iteration" not in text and "a probe would train all of it: the run is its own probe" in text


def test_from_a_probes_rate() -> None:
    plan = preset_plan(load_preset("tiny"), device_type="cpu", dtype="float32", batch_size=8, max_iters=1000)
    t = from_probe_rate(plan, 2048.0)
    assert t.step_s == pytest.approx(1.0) and "probe" in t.basis and "2,048 tokens/s" in t.basis
    assert t.seconds > 1000
    with pytest.raises(UsageError, match="throughput"):
        from_probe_rate(plan, 0.0)
    with pytest.raises(UsageError, match="throughput"):
        from_probe_rate(plan, math.nan)


def test_iters_within_a_budget() -> None:
    plan = preset_plan(load_preset("tiny"), device_type="cpu", dtype="float32", batch_size=8, max_iters=5000)
    speed = throughput()
    n = iters_within(plan, speed, 600)
    assert 0 < n < 5000
    assert predict_run_time(replace(plan, max_iters=n), speed).seconds <= 600
    assert iters_within(plan, speed, 1e9) == 5000
    assert iters_within(plan, speed, 1) == 0


def test_throughput_json_round_trip_and_malformed_records() -> None:
    t = throughput()
    assert Throughput.from_json(json.loads(json.dumps(t.to_json()))) == t
    assert t.peak() == 320e9 and t.rate(load_preset("tiny").model) == pytest.approx(
        (50304 * 192 + 12 * 4 * 192 ** 2) / (50304 * 192 / 280e9 + 12 * 4 * 192 ** 2 / 320e9))
    for bad in ({}, {"head": "x"}, {**t.to_json(), "vocab_s": -1}, {**t.to_json(), "head": []},
                {**t.to_json(), "device_type": "tpu"}, {**t.to_json(), "layer": [[192, "fast"]]}, [1, 2]):
        with pytest.raises(ValueError):
            Throughput.from_json(bad)


def test_cost_model_entries_say_what_they_were_fitted_on() -> None:
    for kind, model in COST_MODEL.items():
        assert model.fitted_on and model.matmul > 0 and min(model.vocab, model.elementwise, model.optimizer) >= 0, kind


def test_the_cost_model_follows_dtype_and_matrix_unit_and_the_optimizer_is_paid_once_an_iteration() -> None:
    assert cost_model("cpu", "float32") is COST_MODEL["cpu"]
    assert cost_model("cpu", "float32", amx=True) is COST_MODEL["cpu:float32:amx"]
    assert cost_model("cpu", "bfloat16") is COST_MODEL["cpu:bfloat16"]
    assert cost_model("cpu", "bfloat16", amx=True) is COST_MODEL["cpu:bfloat16:amx"]
    assert cost_model("cuda", "bfloat16") is COST_MODEL["cuda"]
    assert eval_batch_share("cpu", "bfloat16") < eval_batch_share("cpu", "float32") == eval_batch_share("cuda", "bfloat16")
    small = load_preset("small")
    t = throughput(dtype="bfloat16")
    plans = [preset_plan(small, device_type="cpu", dtype="bfloat16", batch_size=b) for b in (2, 8)]
    opt = [token_cost_terms(p, t)[3] for p in plans]
    assert opt[0] == pytest.approx(4 * opt[1]) and opt[1] == pytest.approx(
        count_params(small.model) * t.elementwise_s / (8 * small.model.block_size))
    assert token_cost_terms(plans[0], t)[:3] == token_cost_terms(plans[1], t)[:3]
    if COST_MODEL["cpu:bfloat16"].optimizer > 0:  # a bigger batch shares the step's fixed work among more tokens
        assert predicted_tokens_per_sec(plans[1], t) > predicted_tokens_per_sec(plans[0], t)
    assert Throughput.from_json({**t.to_json(), "amx": True}).amx and not Throughput.from_json(
        {k: v for k, v in t.to_json().items() if k != "amx"}).amx


def test_the_measurement_is_cached_and_a_malformed_cache_rewritten(tmp_path: Path, monkeypatch) -> None:
    from gptwiz.training import throughput as tp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls: list[str] = []

    def fake_measure(device: str, dtype: str) -> Throughput:
        calls.append(dtype)
        return throughput(dtype=dtype)

    monkeypatch.setattr(tp, "measure", fake_measure)
    cache = tmp_path / "gptwiz" / "throughput.json"
    assert tp.cache_file() == cache
    cache.parent.mkdir()
    cache.write_text("{not json")
    assert tp.machine_throughput("cpu", "float32") == throughput()
    assert json.loads(cache.read_text())  # rewritten
    assert tp.machine_throughput("cpu", "float32") == throughput() and calls == ["float32"]
    key = tp.machine_key("cpu", "float32")
    cache.write_text(json.dumps({key: {"head": "garbage"}}))
    tp.machine_throughput("cpu", "float32")
    assert calls == ["float32", "float32"] and Throughput.from_json(json.loads(cache.read_text())[key])


def test_a_refresh_keeps_the_best_reading(tmp_path: Path, monkeypatch) -> None:
    from gptwiz.training import throughput as tp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    readings = iter([throughput(scale=2.0), throughput(scale=1.0)])
    monkeypatch.setattr(tp, "measure", lambda device, dtype: next(readings))
    tp.machine_throughput("cpu", "float32")
    assert tp.machine_throughput("cpu", "float32", refresh=True) == throughput(scale=2.0)


def test_the_real_measurement_is_short_and_sane(tmp_path: Path, monkeypatch) -> None:
    from gptwiz.training import throughput as tp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    t = tp.measure("cpu", "float32", seconds_per_shape=0.01)
    assert [w for w, _ in t.head] == list(tp.WIDTHS) and all(1e8 < v < 1e15 for _, v in (*t.head, *t.layer))
    assert 0 < t.vocab_s < 1e-6 and 0 < t.elementwise_s < 1e-6


def test_a_slow_dtype_is_measured_within_the_budget(monkeypatch) -> None:
    """Past the budget (here at once: as bf16 on a CPU without bf16 kernels, ~1 GFLOP/s), the first width is
    measured and the wider ones take its rate; no second sweep."""
    from gptwiz.training import throughput as tp

    monkeypatch.setattr(tp, "MEASURE_BUDGET_S", 0.0)
    shapes: list[tuple[int, int, int]] = []
    real = tp._best_rate

    def counted(m: int, k: int, n: int, *rest: Any) -> float:
        shapes.append((m, k, n))
        return real(m, k, n, *rest)

    monkeypatch.setattr(tp, "_best_rate", counted)
    t = tp.measure("cpu", "float32", seconds_per_shape=0.01)
    first = tp.WIDTHS[0]
    assert [k for _, k, _ in shapes] == [first, first]  # the head's and the block's matmul, once
    assert [w for w, _ in t.head] == list(tp.WIDTHS) and len({v for _, v in t.head}) == 1
    assert len({v for _, v in t.layer}) == 1 and 0 < t.vocab_s < 1e-6


def test_timing_is_pure() -> None:
    code = "import sys, gptwiz.planning.timing, gptwiz.planning.recommend; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env())
    assert proc.stdout.strip() == "False", proc.stderr


# --- `gptwiz estimate` ------------------------------------------------------------------------------------

def seeded_cache(tmp_path: Path) -> dict[str, str]:
    """An environment whose throughput cache holds the fixed machine above, for the CLI's device and dtype."""
    from gptwiz.training.throughput import machine_key

    cache = tmp_path / "cache" / "gptwiz"
    cache.mkdir(parents=True)
    records = {machine_key("cpu", d): throughput(dtype=d).to_json() for d in ("float32", "bfloat16")}
    (cache / "throughput.json").write_text(json.dumps(records))
    return cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"))


def test_estimate_gives_the_runs_time(tmp_path: Path) -> None:
    env = seeded_cache(tmp_path)
    args = ["estimate", "--config_file", "tiny", "--batch_size", "8", "--device", "cpu", "--dtype", "float32"]
    data = json.loads(run_cli([*args, "--max_iters", "400", "--json"], cwd=tmp_path, env=env, check=True).stdout)
    plan = preset_plan(load_preset("tiny"), device_type="cpu", dtype="float32", batch_size=8, max_iters=400)
    expected = predict_run_time(plan, throughput())
    assert data["max_iters"] == 400 and data["time"]["seconds"] == pytest.approx(expected.seconds, abs=0.01)
    assert data["time"]["tokens_per_sec"] == pytest.approx(expected.tokens_per_sec, abs=0.01)
    assert "predicted" in data["time"]["basis"] and data["probe_time"]["iters"] == 100
    default = json.loads(run_cli([*args, "--json"], cwd=tmp_path, env=env, check=True).stdout)
    assert default["max_iters"] == 2000 and default["time"]["seconds"] > data["time"]["seconds"]
    text = run_cli([*args, "--max_iters", "400"], cwd=tmp_path, env=env, check=True).stdout
    assert "peak CPU RAM (not VRAM)" in text.splitlines()[0]
    assert "the guide's VRAM figure" not in text and "400 iterations" in text and "probe" in text


def test_estimate_on_cuda_shows_the_guides_vram_beside_it(tmp_path: Path) -> None:
    proc = run_cli(["estimate", "--config_file", "350M_1024", "--batch_size", "12", "--device", "cuda",
                    "--dtype", "bfloat16"], cwd=tmp_path, env=seeded_cache(tmp_path), check=True)
    assert "peak VRAM" in proc.stdout.splitlines()[0] and "the guide's VRAM figure" in proc.stdout


def test_estimate_bad_max_iters(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["estimate", "--config_file", "tiny", "--max_iters", "0"], cwd=tmp_path), "0")


def test_a_trainers_measurement_is_made_in_a_child_and_leaves_its_peak_memory_alone(tmp_path: Path) -> None:
    """The trainer measures the CPU for MFU on a machine's first run: in a child process, so that the peak
    memory the run (its probe) reports is its own, not the measurement's ~100 MiB of matrices."""
    code = ("import re, torch\n"
            "from gptwiz.training.throughput import cpu_throughput_measured_apart, cache_file\n"
            "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            "before = hwm(); t = cpu_throughput_measured_apart('float32')\n"
            "print(hwm() - before, cache_file().exists(), t.peak() > 0)\n")
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/self/clear_refs to reset the peak with")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=cli_env(XDG_CACHE_HOME=str(tmp_path)), timeout=300)
    grown_kib, cached, sane = proc.stdout.split()
    assert int(grown_kib) < 20 * 1024 and cached == "True" and sane == "True", proc.stderr
