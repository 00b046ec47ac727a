"""What a recommendation's settings buy: the predicted quality (gptwiz.planning.quality) of a setting, of each
alternative within the same budget, and the words that set one against another."""

from __future__ import annotations

from gptwiz.common import fmt
from gptwiz.planning.batch_fit import fit_batch
from gptwiz.planning.decision import Ask
from gptwiz.planning.guide_tables import combination
from gptwiz.planning.quality import Quality, predict_quality, preset_shape
from gptwiz.planning.timing import Throughput, iters_within, preset_plan


def setting_quality(ask: Ask, preset: str, *, block_size: int, sequences: int, iters: int,
                    learning_rate: float | None = None) -> Quality:
    """The predicted final validation loss of `preset` at `sequences` a step (over accumulation and cards)."""
    shape = preset_shape(ask.presets[preset], block_size=block_size, tokens_per_iter=sequences * block_size,
                         max_iters=iters, learning_rate=learning_rate)
    return predict_quality(shape, ask.data, ask.quality_model)


def alternative_quality(ask: Ask, preset: str, throughput: Throughput | None, budget: float | None) -> Quality:
    """An alternative at the guide's settings for this card, cut to what the budget allows where the time is
    predicted: what it would give in the same time as the pick."""
    p = ask.presets[preset]
    combo = combination(preset, ask.vram_gb)
    block = p.model.block_size
    fit = fit_batch(p, block, combo.batch_size, ask.device_type, ask.dtype, ask.memory_bytes)
    iters = p.train.max_iters
    if throughput is not None and budget is not None:
        plan = preset_plan(p, device_type=ask.device_type, dtype=ask.dtype, batch_size=fit.batch_size,
                           block_size=block, grad_accum=fit.grad_accum, gpu_count=ask.gpu_count)
        iters = max(1, min(iters, iters_within(plan, throughput, budget)))
    return setting_quality(ask, preset, block_size=block, sequences=combo.batch_size * ask.gpu_count, iters=iters,
                           learning_rate=combo.learning_rate)


def quality_words(q: Quality) -> str:
    """'val loss 4.21 (3.95-4.47), 1.52 bits/byte' for a reason or a table cell."""
    out = f"val loss {q.val_loss:.2f} ({q.low:.2f}-{q.high:.2f})"
    if q.bits_per_byte is not None:
        out += f", {q.bits_per_byte:.2f} bits/byte"
    return out


def short_quality(q: Quality) -> str:
    """'1.52 bits/byte' where the data's bytes a token are known, else 'val loss 4.21'."""
    return f"{q.bits_per_byte:.2f} bits/byte" if q.bits_per_byte is not None else f"val loss {q.val_loss:.2f}"


def trade_words(label: str, seconds: float, q: Quality) -> str:
    """'small for 2h00m: 1.41 bits/byte'."""
    return f"{label} for {fmt.duration(seconds)}: {short_quality(q)}"


__all__ = ["setting_quality", "alternative_quality", "quality_words", "short_quality", "trade_words"]
