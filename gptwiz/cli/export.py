"""`gptwiz export`: a trained run as a Hugging Face GPT-2 model folder, or as a GGUF file for llama.cpp and Ollama."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from gptwiz.cli.args import flag
from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.export.formats import FORMATS, OUTTYPES
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES


def add(sub: Any) -> None:
    p = sub.add_parser("export", help="write a trained run as a Hugging Face GPT-2 model folder (or a GGUF file)")
    p.add_argument("model_name", metavar="NAME", help="a run name or run folder")
    flag(p, "out", required=True, help="the folder to write (new or empty)")
    flag(p, "format", choices=FORMATS, default="hf",
         help="hf (the default): a Hugging Face GPT-2 folder; gguf: NAME.gguf for llama.cpp and an Ollama Modelfile")
    flag(p, "outtype", choices=OUTTYPES,
         help="with --format gguf: the weights' type, f32, f16 (the default, as llama.cpp's converter) or q8_0")
    flag(p, "checkpoint", choices=CHECKPOINT_CHOICES, default="auto",
         help="best or last; auto (the default): the rule `gptwiz sample` uses")
    flag(p, "runs_dir", default="runs")
    flag(p, "overwrite", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.export.hf import ExportOptions, export_run  # lazy: torch only once the verb runs

    opts = ExportOptions(**{k: v for k, v in vars(args).items() if k in ExportOptions.__dataclass_fields__})

    def say(message: str) -> None:
        print(inert(f"gptwiz export: {message}"), file=sys.stderr)  # it may name the run's files

    command = shlex.join(["gptwiz", *getattr(args, "argv", ["export", opts.model_name, "--out", opts.out])])
    result = export_run(opts, command=command, warn=say, note=say)
    print(inert(f"exported {result.checkpoint} (iteration {result.iteration}, {fmt.count(result.params)} parameters) "
                f"to {result.out}: {', '.join(result.files)}"))
    return 0
