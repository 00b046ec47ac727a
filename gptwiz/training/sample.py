"""Text from a trained run: the best checkpoint (else the last), continued from a prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gptwiz.common.errors import UsageError
from gptwiz.planning.presets import shown
from gptwiz.runs.folder import resolve_run


@dataclass(frozen=True)
class SampleOptions:
    model_name: str
    prompt: str = "\n"
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 200
    num_samples: int = 1
    seed: int | None = None
    device: str = "auto"
    runs_dir: str = "runs"


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
    _whole_in("max_new_tokens", opts.max_new_tokens, 1, MAX_NEW_TOKENS)
    if not (opts.temperature == 0 or MIN_TEMPERATURE <= opts.temperature <= MAX_TEMPERATURE):  # NaN too
        raise UsageError(f"invalid --temperature {shown(opts.temperature)}: must be 0 (greedy) or a number from "
                         f"{MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}")
    _whole_in("top_k", opts.top_k, 1, MAX_TOP_K)
    _whole_in("num_samples", opts.num_samples, 1, MAX_SAMPLES)
    _whole_in("seed", opts.seed, 0, 2**32 - 1)


def sample(opts: SampleOptions, warn: Callable[[str], None] | None = None,
           note: Callable[[str], None] | None = None) -> list[str]:
    """`opts.num_samples` continuations of the prompt; `warn` hears of a damaged checkpoint passed over, `note`
    which checkpoint was used (its iteration and validation loss)."""
    check_sample_options(opts)
    paths = resolve_run(opts.model_name, opts.runs_dir)
    import torch

    from gptwiz.data.tokenizer import get_encoding
    from gptwiz.model.gpt import GPT
    from gptwiz.training.checkpoint import check_model_state, describe_checkpoint, load_run_checkpoint
    from gptwiz.training.device import resolve_device

    device = resolve_device(opts.device)
    passed_over: list[str] = []

    def damaged(message: str) -> None:
        passed_over.append(message)
        if warn is not None:
            warn(message)

    path, state = load_run_checkpoint(paths, prefer="best", map_location=device, warn=damaged)
    config = check_model_state(path, state)  # before building it: the config may claim far more than the file holds
    try:
        model = GPT(config)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # whole, but not weights of the model it describes
        raise UsageError(f"checkpoint {path} does not hold the model its config describes "
                         f"({exc.__class__.__name__}); it was not loaded") from None
    if note is not None and not passed_over:  # (the warning names the checkpoint loaded instead, and its iteration)
        note(f"using {describe_checkpoint(path, state)}")
    model.to(device).eval()
    enc = get_encoding()
    ids = enc.encode_ordinary(opts.prompt) or [enc.eot_token]
    generator = torch.Generator(device=device)
    generator.manual_seed(opts.seed if opts.seed is not None else torch.seed())
    outputs = []
    for _ in range(opts.num_samples):
        x = torch.tensor([ids], dtype=torch.long, device=device)
        y = model.generate(x, opts.max_new_tokens, temperature=opts.temperature, top_k=opts.top_k, generator=generator)
        outputs.append(enc.decode([t for t in y[0].tolist() if t < enc.n_vocab]))
    return outputs
