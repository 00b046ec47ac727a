"""Text from a trained run: the checkpoint the rule of gptwiz.runs.checkpoints picks, continued from a prompt."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gptwiz.common.errors import UsageError
from gptwiz.data.tokenizer import run_tokenizer
from gptwiz.planning.presets import shown
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import resolve_run
from gptwiz.training.run_model import inference_runtime, load_run_model


@dataclass(frozen=True)
class GenerationOptions:
    """What generating from a run's model takes, for `gptwiz sample` and `gptwiz chat` alike."""
    model_name: str
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 200
    seed: int | None = None
    device: str = "auto"
    runs_dir: str = "runs"
    checkpoint: str = "auto"  # best, last, or auto (gptwiz.runs.checkpoints.choose)


@dataclass(frozen=True)
class SampleOptions(GenerationOptions):
    prompt: str = "\n"
    num_samples: int = 1


@dataclass(frozen=True)
class SampleResult:
    """One continuation, and what made it: `gptwiz sample --json` prints these fields (tokens_per_sec derived)."""
    text: str
    new_tokens: int
    seconds: float
    checkpoint: str
    iter: int
    data: bytes = b""  # the text's bytes exactly as the tokens make them (`text` replaces what is not UTF-8)

    @property
    def tokens_per_sec(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "new_tokens": self.new_tokens, "tokens_per_sec": round(self.tokens_per_sec, 2),
                "checkpoint": self.checkpoint, "iter": self.iter}


# The valid range of each number (a longer run of text, more samples or a lower temperature is a slip):
# below MIN_TEMPERATURE, dividing the logits by it overflows to infinities, which make no probabilities.
MAX_NEW_TOKENS = 1_000_000
MAX_SAMPLES = 10_000
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0
MAX_TOP_K = 1_048_576  # the largest vocabulary a preset may have


def _whole_in(name: str, value: int | None, low: int, high: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        raise UsageError(f"invalid --{name} {shown(value)}: must be a whole number from {low} to {high}")


def check_sample_options(opts: SampleOptions) -> None:
    """Every number within its range, before a checkpoint is read."""
    check_generation_options(opts)
    _whole_in("num_samples", opts.num_samples, 1, MAX_SAMPLES)


def check_generation_options(opts: GenerationOptions) -> None:
    """The numbers `gptwiz sample` and `gptwiz chat` share, each within its range."""
    _whole_in("max_new_tokens", opts.max_new_tokens, 1, MAX_NEW_TOKENS)
    if not (opts.temperature == 0 or MIN_TEMPERATURE <= opts.temperature <= MAX_TEMPERATURE):  # NaN too
        raise UsageError(f"invalid --temperature {shown(opts.temperature)}: must be 0 (greedy) or a number from "
                         f"{MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}")
    _whole_in("top_k", opts.top_k, 1, MAX_TOP_K)
    _whole_in("seed", opts.seed, 0, 2**32 - 1)
    if opts.checkpoint not in CHECKPOINT_CHOICES:
        raise UsageError(f"invalid --checkpoint {shown(opts.checkpoint)}: must be best or last (or auto, the default)")


def sample(opts: SampleOptions, warn: Callable[[str], None] | None = None,
           note: Callable[[str], None] | None = None) -> list[str]:
    """`opts.num_samples` continuations of the prompt; `warn` hears of a damaged checkpoint passed over, `note`
    which checkpoint was used (its iteration and validation loss, and why the other was not)."""
    return [result.text for result in sample_results(opts, warn, note)]


def sample_results(opts: SampleOptions, warn: Callable[[str], None] | None = None,
                   note: Callable[[str], None] | None = None) -> list[SampleResult]:
    """As `sample`, with each continuation's new tokens, time and checkpoint."""
    check_sample_options(opts)
    paths = resolve_run(opts.model_name, opts.runs_dir)
    runtime = inference_runtime(opts.device)
    device = runtime.device
    loaded = load_run_model(paths, opts.checkpoint, device, warn=warn, note=note)
    model = loaded.model
    enc = run_tokenizer(paths.root, read_json(paths.config))
    ids = enc.encode_ordinary(opts.prompt) or [enc.eot_token]
    generator = torch.Generator(device=device)
    generator.manual_seed(opts.seed if opts.seed is not None else torch.seed())
    outputs = []
    for _ in range(opts.num_samples):
        x = torch.tensor([ids], dtype=torch.long, device=device)
        start = time.perf_counter()
        with runtime.autocast():  # one context for the whole loop: the weights are cast once, not every step
            y = model.generate(x, opts.max_new_tokens, temperature=opts.temperature, top_k=opts.top_k,
                               generator=generator)
        tokens = y[0].tolist()  # (waits for the device)
        seconds = time.perf_counter() - start
        data = enc.decode_bytes([t for t in tokens if t < enc.n_vocab])
        outputs.append(SampleResult(data.decode("utf-8", errors="replace"), len(tokens) - len(ids), seconds,
                                    loaded.checkpoint, loaded.iteration, data))
    return outputs
