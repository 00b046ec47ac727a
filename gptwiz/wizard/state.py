"""The wizard's answers so far, and the pure functions that turn them into train arguments and options.

No Textual here: the screens read and write a `WizardState`; what it implies (the `gptwiz train`
arguments, the probe's options, the dataset a path names) is computed here and tested directly. The shell
line a user copies is gptwiz.wizard.commands'.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.data.sizes import BYTES_PER_TOKEN, estimated_tokens
from gptwiz.model.config import padded_vocab
from gptwiz.planning import policy
from gptwiz.planning.hardware import training_ram_bytes
from gptwiz.planning.knobs import Advice, Knobs

GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class DatasetChoice:
    """What the dataset screen settled on."""
    # "input_file" (one text file), "dataset_dir" (prepared), "sources" (to prepare), "demo"
    kind: str
    path: str                    # as given: the file, the prepared folder, or the folder/glob to prepare
    files: int
    bytes: int
    tokens: int | None = None    # exact, from a manifest
    prepared_dir: str | None = None  # the dataset folder to train from, once prepared
    estimated: int | None = None     # the tokens estimated from a sample of the text (gptwiz.data.token_count)
    tokenizer: str = "gpt2"          # gpt2, or bpe:N: the data's own, trained when it is prepared
    vocab_tokens: int | None = None  # that tokenizer's size (None: GPT-2's)

    @property
    def est_tokens(self) -> int:
        """The exact count where known, else the sampled estimate, else bytes / 4 (nothing sampled: the demo
        corpus before it is built)."""
        if self.tokens is not None:
            return self.tokens
        return self.estimated if self.estimated is not None else int(self.bytes / BYTES_PER_TOKEN)

    @property
    def needs_prepare(self) -> bool:
        """Documents and the demo corpus are prepared; a text file too where it gets a tokenizer of its own."""
        prepared = self.kind in ("sources", "demo") or (self.kind == "input_file" and self.tokenizer != "gpt2")
        return prepared and self.prepared_dir is None

    def describe(self) -> str:
        tokens = (f"{self.est_tokens:,} tokens" if self.tokens is not None
                  else f"~{self.est_tokens:,} tokens (estimated)")
        what = {"input_file": "text file", "dataset_dir": "prepared dataset", "sources": "documents to prepare",
                "demo": "built-in demo corpus"}[self.kind]
        files = f"{self.files:,} file{'s' if self.files != 1 else ''}"
        own = f", tokenizer {self.tokenizer}" if self.tokenizer != "gpt2" else ""
        return f"{what}: {files}, {fmt.bytes_(self.bytes, unit='MB')}, {tokens}{own}"


def source_glob(path: str) -> str:
    """A folder means every file under it; a glob or a file stays as given."""
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded) and not GLOB_CHARS.search(path):
        return os.path.join(path.rstrip("/"), "**", "*")
    return path


def inspect_dataset(text: str) -> DatasetChoice:
    """What a typed path names, with its size: raises UsageError (one line, shown under the field) if nothing."""
    path = text.strip()
    if not path:
        raise UsageError("type a text file, a folder of documents, a glob such as docs/*.txt, or a prepared dataset")
    expanded = Path(os.path.expanduser(path))
    if expanded.is_dir() and (expanded / "manifest.json").exists():
        from gptwiz.data.info import dataset_info  # lazy: numpy, only once a prepared dataset is named

        info = dataset_info(expanded)
        totals = info["totals"]
        tokenizer = str(info.get("tokenizer") or "gpt2")
        own = tokenizer != "gpt2" and isinstance(info.get("vocab_size"), int)
        return DatasetChoice("dataset_dir", path, int(totals["files"]), int(totals["bytes"]), int(totals["tokens"]),
                             prepared_dir=str(expanded), tokenizer=tokenizer if own else "gpt2",
                             vocab_tokens=int(info["vocab_size"]) if own else None)
    if expanded.is_file():
        size = expanded.stat().st_size
        return DatasetChoice("input_file", path, 1, size, estimated=estimated_tokens([expanded], [size]))
    if not expanded.exists() and not GLOB_CHARS.search(path):
        raise UsageError(f"{path}: no such file or folder")
    from gptwiz.data.prepare import SourceSpec, plan_source  # lazy: numpy, only once documents are named

    plan = plan_source(SourceSpec(name="data", glob=source_glob(path), weight=1.0))
    return DatasetChoice("sources", path, len(plan.files), plan.bytes,
                         estimated=estimated_tokens([Path(f.path) for f in plan.files], [f.size for f in plan.files]))


def prepared_dir_for(path: str, data_dir: Path, tokenizer: str = "gpt2") -> Path:
    """Where the wizard prepares a folder or glob: data/<the folder's name>-prepared (-bpe8192-prepared with a
    tokenizer of its own, so that the two preparations of one text are two datasets)."""
    fixed = path.strip().rstrip("/")
    if GLOB_CHARS.search(fixed):
        from gptwiz.data.prepare import glob_root  # lazy: numpy, only for a glob

        fixed = glob_root(fixed)
    named = Path(os.path.expanduser(fixed))
    # A text file's name without its extension: data/plays-bpe8192-prepared, not plays.txt-...
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", named.stem if named.is_file() else named.name).strip("-.")
    own = "" if tokenizer == "gpt2" else "-" + tokenizer.replace(":", "")
    return data_dir / f"{(stem or 'dataset')[:60]}{own}-prepared"


def find_prepared(data_dir: Path) -> list[Path]:
    """Prepared datasets directly under data_dir (one level), for picking instead of typing."""
    if not data_dir.is_dir():
        return []
    return sorted(p for p in data_dir.iterdir() if p.is_dir() and (p / "manifest.json").exists())


def parse_vram(text: str) -> float | None:
    """'' -> None (use what was detected); '24', '24GB', '24 GiB' -> 24.0; raises ValueError otherwise."""
    try:
        return policy.parse_vram(text)
    except UsageError:  # the screens say what to type instead of the command line's message
        raise ValueError(text) from None


@dataclass
class WizardState:
    runs_dir: Path = Path("runs")
    data_dir: Path = Path("data")
    use_case: str | None = None
    hardware: Any = None                     # gptwiz.planning.hardware.HardwareReport
    vram_override_gb: float | None = None
    planned_gpu: str | None = None           # a named card to plan for (gptwiz.planning.gpus key), not this machine
    dataset: DatasetChoice | None = None
    recommendation: Any = None               # gptwiz.wizard.services.RecView
    knobs: Knobs | None = None
    run_name: str | None = None
    probe_result: Any = None
    history: list[Advice] = field(default_factory=list)  # advice applied so far, newest last

    # -- hardware --

    @property
    def gpus(self) -> list[Any]:
        return list(getattr(self.hardware, "gpus", None) or [])

    @property
    def detected_vram_gb(self) -> float:
        """The smallest card's memory in GiB, as gptwiz.planning.hardware reports it; 0 on a CPU machine."""
        return round(float(getattr(self.hardware, "vram_gb", 0.0) or 0.0), 1)

    @property
    def card(self) -> Any:
        """The named card planned for (gptwiz.planning.gpus.GpuCard), or None for this machine."""
        from gptwiz.planning.gpus import find_card  # lazy: only a wizard that picked a card needs the table

        return find_card(self.planned_gpu) if self.planned_gpu else None

    @property
    def vram_gb(self) -> float:
        """A typed figure wins, then the named card's memory, then what was detected."""
        if self.vram_override_gb is not None:
            return self.vram_override_gb
        card = self.card
        return float(card.memory_gb) if card is not None else self.detected_vram_gb

    @property
    def vocab_size(self) -> int | None:
        """The model's vocabulary where the data has a tokenizer of its own (padded as the trainer pads it);
        None for GPT-2's, the presets' own."""
        d = self.dataset
        return padded_vocab(d.vocab_tokens) if d is not None and d.vocab_tokens else None

    @property
    def gpu_count(self) -> int:
        return 1 if self.planned_gpu else max(1, len(self.gpus))

    @property
    def on_gpu(self) -> bool:
        return self.vram_gb > 0

    def device_memory_bytes(self) -> int:
        """What the memory bar and the recommendation measure against: the card (possibly overridden), else the
        RAM available when the hardware was detected (gptwiz.planning.hardware.training_ram_bytes); 0 before."""
        if self.on_gpu:
            return int(self.vram_gb * 2**30)
        return training_ram_bytes(self.hardware) if self.hardware is not None else 0

    # -- the train arguments --

    def data_args(self) -> list[str]:
        d = self.dataset
        if d is None:
            raise UsageError("no dataset chosen yet")
        if d.kind == "input_file" and d.prepared_dir is None:
            return ["--input_file", d.path]
        if d.prepared_dir is None:
            raise UsageError(f"{d.path} is not prepared yet")
        return ["--dataset_dir", d.prepared_dir]

    def knob_args(self) -> list[str]:
        k = self.knobs
        if k is None:
            raise UsageError("no preset chosen yet")
        args = ["--config_file", k.preset, "--max_iters", str(k.max_iters), "--batch_size", str(k.batch_size),
                "--block_size", str(k.block_size), "--learning_rate", f"{k.learning_rate:g}"]
        if k.grad_accum != 1:
            args += ["--grad_accum", str(k.grad_accum)]
        if k.dropout is not None:
            args += ["--dropout", f"{k.dropout:g}"]
        return args

    def train_args(self, name: str | None = None, data: list[str] | None = None) -> list[str]:
        knobs = self.knob_args()
        args = ["train", *knobs[:2], "--model_name", name or self.run_name or "my_model",
                *(data if data is not None else self.data_args()), *knobs[2:]]
        if self.on_gpu and self.gpu_count > 1:
            args += ["--nproc", str(len(self.gpus))]  # one data-parallel trainer per card (gptwiz.training.distributed)
        if str(self.runs_dir) != "runs":
            args += ["--runs_dir", str(self.runs_dir)]
        if self.dataset is not None and self.dataset.kind == "input_file" and self.dataset.prepared_dir is None \
                and str(self.data_dir) != "data":
            args += ["--data_dir", str(self.data_dir)]
        return args

    def probe_iters(self, asked: int = policy.PROBE_ITERS) -> int:
        """The iterations a probe of these knobs trains: `asked`, at most the run's own (policy.probe_iters; the
        probe itself keeps to the same rule and says so)."""
        return policy.probe_iters(self.knobs.max_iters if self.knobs else None, asked)

    def probe_options(self, iters: int = policy.PROBE_ITERS) -> Any:
        from gptwiz.planning.time_budget import run_budget  # lazy: the quality model loads when a probe starts
        from gptwiz.training.probe import ProbeOptions  # lazy: the probe package loads only when a probe starts

        k = self.knobs
        assert k is not None
        data = self.data_args()
        # The use case's promise: the guide's Training Time for it is what the probe judges the run's time against.
        budget = run_budget(None, self.use_case)
        return ProbeOptions(config_file=k.preset, iters=iters, batch_size=k.batch_size, block_size=k.block_size,
                            grad_accum=k.grad_accum, learning_rate=k.learning_rate, max_iters=k.max_iters,
                            dropout=k.dropout, input_file=data[1] if data[0] == "--input_file" else None,
                            dataset_dir=data[1] if data[0] == "--dataset_dir" else None,
                            runs_dir=str(self.runs_dir), data_dir=str(self.data_dir),
                            budget_s=budget.seconds if budget else None, budget_label=budget.label if budget else None)

    def default_run_name(self) -> str:
        """The use case and preset, made unique among the existing runs."""
        base = f"{self.use_case or 'model'}-{self.knobs.preset if self.knobs else 'run'}".replace("_", "-")
        name, n = base, 2
        while (self.runs_dir / name).exists():
            name, n = f"{base}-{n}", n + 1
        return name
