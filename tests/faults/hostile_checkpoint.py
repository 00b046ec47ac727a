"""A checkpoint whose model, deterministically, writes terminal control sequences: the clipboard (OSC 52), the
screen cleared (CSI 2J), BEL, and the C1 character U+009B (an 8-bit CSI to some terminals).

The weights are set by hand. Every block's output projections are zeroed, so the residual stream at position p is
only the token's embedding plus the position's; each position p is given a large one-hot direction of its own in
the position table (direction p mod L, L the sequence's length), and the tied embedding row of the token that must
follow position p holds that same direction. The final LayerNorm's gain is large, so the logit of that token
dominates every other by hundreds: at any temperature the model emits CONTROL_SEQUENCE[(p + 1) % L] after
position p, whatever the prompt. Once the window is full (block_size positions) the last position never moves
again, and the model repeats one token of the sequence.
"""

from __future__ import annotations

import io
from pathlib import Path

import tiktoken
import torch

from gptwiz.common.atomic import atomic_write

# OSC 52 (set the clipboard to base64 "hi"), BEL ending it, CSI 2J (clear the screen), and U+009B in UTF-8.
CONTROL_SEQUENCE = b"\x1b]52;c;aGk=\x07\x1b[2J\xc2\x9b"
# The characters none of which may reach a terminal from the model's output.
FORBIDDEN = ("\x1b", "\x07", "\x9b")

POSITION_SCALE = 100.0  # the position's direction dwarfs the token's own row in the residual stream
GAIN = 50.0             # the final LayerNorm's gain: the chosen token's logit is about GAIN * sqrt(n_embd)


def _token_ids() -> list[int]:
    """Each byte of the sequence as its own GPT-2 token (byte-level BPE has one for every byte)."""
    enc = tiktoken.get_encoding("gpt2")
    return [enc.encode_single_token(bytes([b])) for b in CONTROL_SEQUENCE]


def _rewrite(weights: dict[str, torch.Tensor]) -> None:
    wte = weights["transformer.wte.weight"]
    wpe = weights["transformer.wpe.weight"]
    block_size, n_embd = wpe.shape
    tokens = _token_ids()
    length = len(tokens)
    if length > n_embd:
        raise ValueError(f"the model is {n_embd} wide; the sequence needs {length} directions")
    for name, tensor in weights.items():
        if name.startswith("transformer.h.") and ".c_proj." in name:
            tensor.zero_()  # attention and MLP add nothing: the stream is token + position
    wte.zero_()
    for q in range(length):  # the token that follows any position p with p % length == q
        wte[tokens[(q + 1) % length], q] += 1.0
    wpe.zero_()
    for p in range(block_size):
        wpe[p, p % length] = POSITION_SCALE
    weights["transformer.ln_f.weight"].fill_(GAIN)
    if "transformer.ln_f.bias" in weights:
        weights["transformer.ln_f.bias"].zero_()
    if "lm_head.weight" in weights and weights["lm_head.weight"].data_ptr() != wte.data_ptr():
        weights["lm_head.weight"].copy_(wte)  # tied in the model; a state that stores both keeps them equal


def make_control_emitting_checkpoint(run_dir: Path) -> None:
    """Rewrite ckpt_last.pt and ckpt_best.pt of `run_dir` (those it has) so that the model emits
    CONTROL_SEQUENCE, round and round; everything else in them (iteration, losses, config) is kept."""
    found = False
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        path = run_dir / name
        if not path.exists():
            continue
        found = True
        state = torch.load(path, map_location="cpu", weights_only=True)
        _rewrite(state["model"])
        buf = io.BytesIO()
        torch.save(state, buf)  # as gptwiz.training.checkpoint.save_checkpoint writes one
        atomic_write(path, lambda f: f.write(buf.getbuffer()))
    if not found:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to rewrite")
