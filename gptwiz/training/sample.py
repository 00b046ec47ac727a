"""Text from a trained run: the best checkpoint (else the last), continued from a prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gptwiz.common.errors import UsageError
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


def sample(opts: SampleOptions, warn: Callable[[str], None] | None = None) -> list[str]:
    """`opts.num_samples` continuations of the prompt; `warn` hears of a damaged checkpoint passed over."""
    if opts.max_new_tokens <= 0:
        raise UsageError(f"invalid --max_new_tokens {opts.max_new_tokens}: must be a positive whole number")
    if not 0 <= opts.temperature < float("inf"):  # NaN and infinity too: they make no probabilities
        raise UsageError(f"invalid --temperature {opts.temperature}: must be 0 (greedy) or a finite number above it")
    if opts.top_k is not None and opts.top_k <= 0:
        raise UsageError(f"invalid --top_k {opts.top_k}: must be a positive whole number")
    if opts.num_samples <= 0:
        raise UsageError(f"invalid --num_samples {opts.num_samples}: must be a positive whole number")
    if opts.seed is not None and not 0 <= opts.seed < 2**32:
        raise UsageError(f"invalid --seed {opts.seed}: must be a whole number from 0 to 4294967295")
    paths = resolve_run(opts.model_name, opts.runs_dir)
    import torch

    from gptwiz.data.tokenizer import get_encoding
    from gptwiz.model.config import ModelConfig
    from gptwiz.model.gpt import GPT
    from gptwiz.training.checkpoint import load_run_checkpoint
    from gptwiz.training.device import resolve_device

    device = resolve_device(opts.device)
    path, state = load_run_checkpoint(paths, prefer="best", map_location=device, warn=warn)
    try:
        model = GPT(ModelConfig(**state["config"]["model"]))
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # whole, but not weights of the model it describes
        raise UsageError(f"checkpoint {path} does not hold the model its config describes "
                         f"({exc.__class__.__name__}); it was not loaded") from None
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
