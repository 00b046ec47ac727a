"""Generation speed: gptwiz's KV-cached loop beside its uncached one and transformers' `generate` on the
exported model, greedy, from the same prompt, in one process (so on the same threads and machine state).

    python benchmarks/generate_speed.py                       # tiny and small, 200 and 1,000 new tokens
    python benchmarks/generate_speed.py --presets tiny --tokens 200 --repeats 3 --json out.json

The weights are the presets' untrained initialisation (speed does not depend on training), written to a temporary
folder by the export's own conversion (gptwiz.export.hf). The context is raised to --block_size (default 1,024) so
that the prompt and 1,000 new tokens fit: transformers' GPT-2 has no positions beyond it, and gptwiz's loop would
otherwise slide its window, which runs the whole window each step once the context is full. Tokens/s is new tokens
over the wall time of the call, the best of --repeats, after a short warm-up of each. "same" says whether gptwiz's
cached tokens equal the uncached ones and transformers' (greedy on random weights: a near-tie can differ).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."


def cpu_capability() -> str:
    """The CPU's model and the vector extensions torch's kernels can use."""
    import torch

    name, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("?", "x86_64", ""):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return (f"{name}; {torch.get_num_threads()} torch threads; torch CPU capability {capability}; "
            f"flags: {' '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}")


def build(preset_name: str, block_size: int, folder: Path) -> tuple[Any, Any]:
    """gptwiz's model of the preset (untrained, seed 0), and transformers' from its export."""
    import torch
    from transformers import GPT2LMHeadModel

    from gptwiz.export.hf import WEIGHTS_FILE, gpt2_config, gpt2_tensors
    from gptwiz.export.safetensors_file import write_safetensors
    from gptwiz.model.gpt import GPT
    from gptwiz.planning.presets import load_preset

    config = load_preset(preset_name).with_overrides(block_size=block_size, dropout=0.0).model
    torch.manual_seed(0)
    ours = GPT(config).eval()
    folder.mkdir(parents=True)
    write_safetensors(folder / WEIGHTS_FILE, gpt2_tensors(config, ours.state_dict()), {"format": "pt"})
    (folder / "config.json").write_text(json.dumps(gpt2_config(config)))
    theirs = GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()
    return ours, theirs


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(presets: list[str], token_counts: list[int], block_size: int, repeats: int, skip_uncached_above: int,
        dtype: str) -> list[dict[str, Any]]:
    import contextlib

    import torch
    from transformers import GenerationConfig

    from gptwiz.data.tokenizer import get_encoding

    prompt = torch.tensor([get_encoding().encode_ordinary(PROMPT)])
    if prompt.size(1) + max(token_counts) > block_size:
        raise SystemExit(f"--block_size {block_size} holds fewer than the prompt's {prompt.size(1)} tokens plus "
                         f"{max(token_counts)}")
    low = dtype == "bfloat16"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            ours, theirs = build(preset, block_size, Path(tmp) / preset)
            if low:
                theirs = theirs.to(torch.bfloat16)
            autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if low else contextlib.nullcontext

            def gptwiz(n: int, cache: bool) -> torch.Tensor:
                with torch.no_grad(), autocast():
                    return ours.generate(prompt, n, temperature=0, use_cache=cache)

            def transformers(n: int) -> torch.Tensor:
                # min_new_tokens: the untrained model may pick the end-of-text token, which would stop it early.
                config = GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=50256,
                                          eos_token_id=50256)
                with torch.no_grad():
                    return theirs.generate(prompt, generation_config=config, attention_mask=torch.ones_like(prompt))

            gptwiz(8, True), gptwiz(8, False), transformers(8)  # warm-up: first calls allocate and pick kernels
            for n in token_counts:
                row: dict[str, Any] = {"preset": preset, "params": ours.num_params(), "new_tokens": n,
                                       "block_size": block_size, "dtype": dtype}
                t, cached = timed(lambda: gptwiz(n, True), repeats)
                row["gptwiz_cached"] = n / t
                t, hf_out = timed(lambda: transformers(n), repeats)
                row["transformers"] = n / t
                row["same_as_transformers"] = bool(torch.equal(cached, hf_out))
                if n <= skip_uncached_above:
                    t, uncached = timed(lambda: gptwiz(n, False), repeats)
                    row["gptwiz_uncached"] = n / t
                    row["same_as_uncached"] = bool(torch.equal(cached, uncached))
                rows.append(row)
                print(line(row), flush=True)
    return rows


HEADER = (f"{'preset':<7}{'new':>6}  {'cached':>9}{'uncached':>10}{'transf.':>9}  {'vs transf.':>10}"
          f"{'vs uncached':>12}  same (uncached, transformers)")


def line(row: dict[str, Any]) -> str:
    unc = row.get("gptwiz_uncached")
    speedup = f"{row['gptwiz_cached'] / unc:.2f}x" if unc else "-"
    return (f"{row['preset']:<7}{row['new_tokens']:>6,}  {row['gptwiz_cached']:>9.1f}"
            f"{(f'{unc:.1f}' if unc else '-'):>10}{row['transformers']:>9.1f}  "
            f"{row['gptwiz_cached'] / row['transformers']:>9.2f}x"
            f"{speedup:>12}  "
            f"{row.get('same_as_uncached', '-')}, {row['same_as_transformers']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--tokens", nargs="+", type=int, default=[200, 1000])
    parser.add_argument("--block_size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--skip_uncached_above", type=int, default=10**9,
                        help="leave out the (slow) uncached loop for longer generations than this")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    import torch
    import transformers

    print(f"CPU: {cpu_capability()}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}, "
          f"{args.dtype}, context {args.block_size}; tokens/s, best of {args.repeats}")
    print(HEADER)
    rows = run(args.presets, args.tokens, args.block_size, args.repeats, args.skip_uncached_above, args.dtype)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_capability(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
