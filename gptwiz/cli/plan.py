"""`gptwiz presets`, `hardware`, `estimate` and `recommend`: the guide's tables as commands; no torch import."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from gptwiz.cli.args import bounded_int, flag, positive_int
from gptwiz.cli.cards import add_gpu_flag, card_block, card_device_dtype, card_line, run_cards
from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.facts import measured_data
from gptwiz.data.sizes import measure_dataset, parse_size
from gptwiz.model.config import count_params, padded_vocab
from gptwiz.planning.gpus import card_throughput, find_card
from gptwiz.planning.guide_tables import USE_CASES
from gptwiz.planning.hardware import detect_hardware, training_ram_bytes
from gptwiz.planning.policy import (
    data_hint,
    no_hardware,
    parse_vram,
    preset_memory,
    resolve_device_dtype,
    run_dropout,
    run_memory,
    training_dtype,
)
from gptwiz.planning.preset_notes import heavier_than_larger
from gptwiz.planning.presets import OPTIMIZERS, check_bound, load_all, load_preset
from gptwiz.planning.quality import predict_quality, preset_shape
from gptwiz.planning.recommend import recommend
from gptwiz.planning.recommend_time import MAX_HOURS
from gptwiz.planning.timing import predict_probe_time, predict_run_time, preset_plan
from gptwiz.training.options import MAX_NPROC  # (torch-free)
from gptwiz.wizard.commands import phase_commands, recommendation_json
from gptwiz.wizard.services import local_quality_model


def add_presets(sub: Any) -> None:
    p = sub.add_parser("presets", help="list the guide's presets")
    flag(p, "json", action="store_true")
    p.set_defaults(func=run_presets)


def add_hardware(sub: Any) -> None:
    p = sub.add_parser("hardware", help="what this machine has to train on: GPUs, CPU cores, RAM")
    flag(p, "gpus", action="store_true", help="list the named cards --gpu plans for (memory, peaks, sources) instead")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_hardware)


def add_estimate(sub: Any) -> None:
    p = sub.add_parser("estimate", help="peak training memory of a preset, term by term")
    flag(p, "config_file", required=True, help="a preset name (tiny, small, 150M, ...) or a preset JSON path")
    flag(p, "batch_size", type=positive_int, help="default: the preset's")
    flag(p, "block_size", type=positive_int, help="default: the preset's")
    flag(p, "grad_accum", type=positive_int, help="default: the preset's")
    flag(p, "dtype", default="auto", help="auto, float32, bfloat16 or float16 (auto: what `gptwiz train` would use)")
    flag(p, "device", default="auto", help="auto, cpu or cuda (cuda plans for a GPU this machine lacks)")
    flag(p, "max_iters", type=positive_int, help="the run's iterations, for its time (default: the preset's)")
    flag(p, "optimizer", choices=OPTIMIZERS, help="the run's optimizer, for its memory (default: the preset's)")
    flag(p, "dataset", help="a text file, folder, glob or prepared dataset to measure, for the predicted quality "
                            "(default: typical English prose)")
    flag(p, "compile", action=argparse.BooleanOptionalAction, default=None,
         help="the run uses torch.compile, or not (default: what `gptwiz train` would decide)")
    add_gpu_flag(p)
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_estimate)


def add_recommend(sub: Any) -> None:
    p = sub.add_parser("recommend", help="which preset and settings, for a use case, a GPU and a dataset")
    flag(p, "use_case", required=True, help="testing, prototype, chat, rag, code or domain")
    flag(p, "vram_gb", help="GB of memory on the GPU (default: --gpu's card, else the detected card; 0: no GPU); "
                            "given with --gpu, it wins over the card's")
    data = p.add_mutually_exclusive_group()
    flag(data, "dataset_size", help="the training text's size, such as 5MB, 500MB or 2GB")
    flag(data, "dataset", help="a text file, folder, glob or prepared dataset to measure")
    flag(p, "gpus", type=bounded_int(1, MAX_NPROC),
         help="how many GPUs train together (default: the detected count)")
    flag(p, "model_name", default="my_model", help="the run name used in the suggested command")
    flag(p, "hours", help="a time budget: the run and its settings fit in this many hours on this machine "
                          "(default: the guide's Training Time for the use case)")
    add_gpu_flag(p, " (unless --vram-gb)")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_recommend)


def run_presets(args: argparse.Namespace) -> int:
    presets = load_all()
    estimates = [(p, preset_memory(p)) for p in presets]
    heavier = heavier_than_larger(estimates)
    notes = {p.name: [h.line() for h in heavier if h.smaller.name == p.name] for p in presets}
    rows: list[dict[str, Any]] = [
        {"name": p.name, "params": count_params(p.model), "n_layer": p.model.n_layer, "n_head": p.model.n_head,
         "n_embd": p.model.n_embd, "block_size": p.model.block_size, "batch_size": p.train.batch_size,
         "learning_rate": p.train.learning_rate, "max_iters": p.train.max_iters,
         "guide_vram_gb": p.guide_vram_gb, "estimate_cuda_bf16_bytes": est.total,
         "estimate_notes": notes[p.name], "description": p.description, "use_cases": list(p.use_cases)}
        for p, est in estimates]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich import box  # lazy: rich stays off the --help path
    from rich.console import Console  # lazy: rich stays off the --help path
    from rich.table import Table  # lazy: rich stays off the --help path

    # No vertical rules: with them the numbers alone overflow 80 columns and rich cuts the names short.
    table = Table(title="gptwiz presets", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    numeric = ("params", "block", "batch", "lr", "guide VRAM", "estimate")
    console = Console()
    describe = console.width >= 110  # on a narrow terminal the numbers matter more than the prose
    for col in ("name", *numeric, *(["description"] if describe else [])):
        table.add_column(col, justify="right" if col in numeric else "left", no_wrap=col != "description")
    for r in rows:
        table.add_row(r["name"], f"{r['params'] / 1e6:.1f}M", str(r["block_size"]), str(r["batch_size"]),
                      f"{r['learning_rate']:g}", f"{r['guide_vram_gb']:g} GB",
                      fmt.gib(r['estimate_cuda_bf16_bytes']) + ("*" if r["estimate_notes"] else " "),
                      *([r["description"]] if describe else []))
    console.print(table)
    if not describe:  # the prose under the table, where the terminal has no room for a column of it
        for r in rows:
            console.print(f"[bold]{r['name']}[/]: {r['description']}", highlight=False)
    console.print("estimate: peak memory to train the preset as it stands (its batch and block) on one CUDA card in "
                  "bf16, from `gptwiz estimate`; the guide's VRAM column is a rough figure", highlight=False)
    if heavier:
        console.print("* more than a preset with more parameters needs:", highlight=False)
        for h in heavier:
            console.print(f"  {h.line()}", highlight=False, markup=False)
    return 0


def cmd_hardware(args: argparse.Namespace) -> int:
    return run_cards(args.json) if args.gpus else run_hardware(args.json)


def cmd_estimate(args: argparse.Namespace) -> int:
    return run_estimate(args.config_file, args.batch_size, args.block_size, args.grad_accum, args.dtype, args.device,
                        args.compile, args.json, max_iters=args.max_iters, gpu=args.gpu, dataset=args.dataset,
                        optimizer=args.optimizer)


def cmd_recommend(args: argparse.Namespace) -> int:
    return run_recommend(args.use_case, args.vram_gb, args.dataset_size, args.dataset, args.gpus, args.model_name,
                         args.json, hours=args.hours, gpu=args.gpu)


def run_hardware(as_json: bool) -> int:
    report = detect_hardware()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    from rich.console import Console  # lazy: rich stays off the --help path

    from gptwiz.planning.render import hardware_table  # lazy: imports rich, kept off the --help path

    Console().print(hardware_table(report))
    return 0


def measured_throughput(device_type: str, dtype: str, report: Any = None) -> Any:
    """This machine's Throughput for the device kind (a few seconds the first time, then cached), or None where
    there is no such device here to measure (planning for a card this machine lacks)."""
    if device_type == "cuda" and not (report.gpus if report is not None else detect_hardware().gpus):
        return None
    from gptwiz.training.throughput import machine_throughput  # lazy: imports torch, only once the command runs

    return machine_throughput(device_type, dtype)


def parse_hours(text: str | None) -> float | None:
    """--hours as typed: a positive number of hours; UsageError naming the value otherwise."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_HOURS:  # NaN too
        raise UsageError(f"invalid --hours {quote(text)}: must be a number of hours above 0, at most {MAX_HOURS} "
                         "(such as 0.5, 2 or 12)")
    return value


def run_estimate(config_file: str, batch_size: int | None, block_size: int | None, grad_accum: int | None,
                 dtype: str, device: str, compiled: bool | None, as_json: bool, max_iters: int | None = None,
                 gpu: str | None = None, dataset: str | None = None, optimizer: str | None = None) -> int:
    for name, value in (("batch_size", batch_size), ("block_size", block_size), ("grad_accum", grad_accum),
                        ("max_iters", max_iters)):
        check_bound(name, value)  # the same ranges as `gptwiz train`'s
    card, device, dtype = card_device_dtype(gpu, device, dtype) if gpu else (None, device, dtype)
    measured = measure_dataset(dataset) if dataset is not None else None
    preset = load_preset(config_file).with_overrides(optimizer=optimizer)
    if measured is not None and measured.tokenizer_tokens:  # a dataset of its own BPE: its runs take its vocabulary
        preset = preset.with_overrides(vocab_size=padded_vocab(measured.tokenizer_tokens))
    report = detect_hardware() if "auto" in (device, dtype) or device == "cuda" else None
    device_type, dtype = resolve_device_dtype(report or no_hardware(), device, dtype)
    plan = preset_plan(preset, device_type=device_type, dtype=dtype, batch_size=batch_size, block_size=block_size,
                       grad_accum=grad_accum, max_iters=max_iters, compiled=compiled)
    data = measured_data(dataset, measured)
    # The dropout the trainer would decide: none for a single pass over the data given.
    dropout = run_dropout(plan.model.dropout, plan.tokens_per_iter * plan.max_iters, data.train_tokens)
    est = run_memory(replace(plan.model, dropout=dropout), batch_size=plan.batch_size,
                     block_size=plan.model.block_size, dtype=dtype, device_type=device_type,
                     grad_accum=plan.grad_accum, max_iters=plan.max_iters, compiled=compiled,
                     optimizer=preset.train.optimizer)
    throughput = card_throughput(card, dtype) if card else measured_throughput(device_type, dtype, report)
    run_time = predict_run_time(plan, throughput) if throughput else None
    probe_time = predict_probe_time(plan, throughput) if throughput else None
    quality = predict_quality(preset_shape(preset, block_size=plan.model.block_size, max_iters=plan.max_iters,
                                           tokens_per_iter=plan.tokens_per_iter), data, local_quality_model("runs"))
    if as_json:
        print(json.dumps({"preset": preset.name, **est.to_json(), "guide_vram_gb": preset.guide_vram_gb,
                          "max_iters": plan.max_iters,
                          "time": run_time.to_json() if run_time else None,
                          "probe_time": probe_time.to_json() if probe_time else None,
                          "quality": quality.to_json(), "data": data.to_json(),
                          "gpu": card_block(card, dtype, plan.model.n_embd, est) if card else None}, indent=2))
        return 0
    from rich.console import Console  # lazy: rich stays off the --help path

    from gptwiz.common.rich_text import outside_markup  # lazy: imports rich, kept off the --help path
    from gptwiz.planning.render import estimate_table, quality_lines, time_lines  # lazy: rich, off the --help path

    console = Console()
    # The title is read as markup; a preset file's name is outside text: escaped, and inert.
    console.print(estimate_table(est, outside_markup(preset.name), guide_vram_gb=preset.guide_vram_gb))
    console.print(time_lines(run_time, probe_time, plan.max_iters, device_type), highlight=False)
    console.print(quality_lines(quality), highlight=False)
    if card:
        console.print(card_line(card, dtype, plan.model.n_embd), style="dim", highlight=False)
    return 0


def run_recommend(use_case: str, vram_gb: str | None, dataset_size: str | None, dataset: str | None,
                  gpus: int | None, model_name: str, as_json: bool, hours: str | None = None,
                  gpu: str | None = None) -> int:
    if use_case not in USE_CASES:
        valid = ", ".join(f"{k} ({v[0]})" for k, v in USE_CASES.items())
        raise UsageError(f"unknown use case {quote(use_case)} (valid: {valid})")
    vram = parse_vram(vram_gb)
    card = find_card(gpu) if gpu else None
    if card and vram == 0:
        raise UsageError(f"--gpu {quote(gpu or '')} with --vram-gb 0: a card needs its memory (leave --vram-gb out)")
    if card and vram is None:
        vram = card.memory_gb
    size_bytes = parse_size(dataset_size) if dataset_size is not None else None
    measured = measure_dataset(dataset) if dataset is not None else None
    report = detect_hardware()
    if vram is None:
        vram = round(report.vram_gb, 2)
    gpu_count = gpus if gpus is not None else (1 if card else max(1, report.gpu_count))
    if vram == 0 and gpus is not None and gpus > 1:
        raise UsageError(f"--gpus {gpus} with no GPU: give --vram-gb for the cards too")
    if vram == 0:
        gpu_count = 1
    device_type = "cuda" if vram > 0 else "cpu"
    budget = parse_hours(hours)
    dtype = card.dtype if card else training_dtype(report, device_type)
    throughput = card_throughput(card) if card else measured_throughput(device_type, dtype, report)
    if budget is not None and throughput is None:
        raise UsageError(f"--hours {hours}: no CUDA card here to predict a {vram:g} GB card's speed with "
                         "(use it on the machine that trains, or without --vram-gb)")
    rec = recommend(use_case, vram, measured.bytes if measured else size_bytes, gpu_count,
                    dataset_tokens=measured.tokens if measured else None,
                    ram_gb=training_ram_bytes(report) / 2**30 if device_type == "cpu" else None,
                    dtype=dtype, throughput=throughput, hours=budget,
                    facts=measured_data(dataset, measured) if dataset is not None else None,
                    quality_model=local_quality_model("runs"))
    data_arg, note = data_hint(measured)
    commands = phase_commands(rec, model_name, data_arg)
    if as_json:
        out = recommendation_json(rec, commands)
        out["dataset"] = measured.to_json() if measured else ({"bytes": size_bytes} if size_bytes is not None else None)
        if note:
            out["prepare_first"] = note
        out["gpu"] = card_block(card, dtype, load_preset(rec.preset).model.n_embd) if card else None
        print(json.dumps(out, indent=2))
        return 0
    from rich.console import Console  # lazy: rich stays off the --help path

    from gptwiz.planning.render import recommendation_view  # lazy: imports rich, kept off the --help path

    Console().print(recommendation_view(rec, commands, note))
    if card:
        Console().print(card_line(card, dtype, load_preset(rec.preset).model.n_embd), style="dim", highlight=False)
    return 0
