"""--optimizer muon: Muon for the blocks' matrices and AdamW for the rest, one optimizer to the trainer, both
states in a checkpoint; refused in one line where it cannot run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from conftest import SHAKESPEARE, assert_one_line_error, run_cli

from gptwiz.common.errors import UsageError
from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.training.distributed import full_state, load_full_state
from gptwiz.training.optimizers import MuonAdamW, build_optimizer, check_optimizer, is_muon_matrix

CONFIG = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=256, dropout=0.0)


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG)


def _steps(model: GPT, optimizer: MuonAdamW, n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randint(0, 256, (4, 16), generator=gen)
        model(x, x).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest() -> None:
    model = _model()
    opt = build_optimizer(model, "muon", 0.1, 1e-3, (0.9, 0.95), fused=False)
    muon = {id(p) for g in opt.muon.param_groups for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in muon}
    assert names and all(n.startswith("transformer.h.") and n.endswith(".weight") for n in names)
    assert not any("wte" in n or "wpe" in n or "ln" in n for n in names)
    assert len(muon) + sum(len(g["params"]) for g in opt.adamw.param_groups) == len(list(model.parameters()))
    assert is_muon_matrix("transformer.h.0.mlp.c_fc.weight", torch.zeros(2, 2))
    assert not is_muon_matrix("transformer.wte.weight", torch.zeros(2, 2))


def test_a_checkpointed_muon_run_continues_bit_exactly() -> None:
    """Six steps in one go against three, a checkpoint (through torch.save and a weights-only load), and three
    more in a new model and optimizer."""
    whole = _model()
    opt = MuonAdamW(whole, 0.1, 1e-3, (0.9, 0.95), fused=False)
    _steps(whole, opt, 3, seed=1)
    model_sd, optim_sd = full_state(whole, opt, fsdp=False)
    buffer = io.BytesIO()
    torch.save({"model": model_sd, "optimizer": optim_sd}, buffer)
    _steps(whole, opt, 3, seed=2)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = _model()
    opt2 = MuonAdamW(resumed, 0.1, 1e-3, (0.9, 0.95), fused=False)
    load_full_state(resumed, opt2, saved["model"], saved["optimizer"], fsdp=False)
    _steps(resumed, opt2, 3, seed=2)
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_refusals_are_one_line() -> None:
    with pytest.raises(UsageError, match="--fsdp"):
        check_optimizer("muon", fsdp=True)
    with pytest.raises(UsageError, match="valid: adamw, muon"):
        check_optimizer("sgd", fsdp=False)


def test_a_muon_run_records_it_and_a_resume_keeps_it(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text(SHAKESPEARE.read_text()[:60_000])
    base = ["train", "--config_file", "tiny", "--model_name", "m", "--input_file", str(text), "--batch_size", "2",
            "--block_size", "32", "--eval_iters", "1", "--eval_interval", "2", "--dtype", "float32", "--quiet"]
    run_cli([*base, "--max_iters", "2", "--optimizer", "muon"], cwd=tmp_path, check=True)
    config = json.loads((tmp_path / "runs" / "m" / "config.json").read_text())
    assert config["train"]["optimizer"] == "muon"
    assert_one_line_error(run_cli(["train", "--model_name", "m", "--resume", "--optimizer", "adamw"], cwd=tmp_path),
                          "trains with --optimizer muon")
    assert_one_line_error(run_cli([*base, "--model_name", "x", "--optimizer", "lion"], cwd=tmp_path), "lion")
    run_cli(["train", "--model_name", "m", "--resume", "--max_iters", "3", "--quiet"], cwd=tmp_path, check=True)
    assert "muon" in (tmp_path / "runs" / "m" / "config.json").read_text()


def test_the_memory_estimate_counts_muons_one_momentum() -> None:
    """Muon keeps one fp32 momentum for each block matrix where AdamW keeps two: 4 bytes less a parameter of
    them (n_layer x 12 x n_embd^2), the rest unchanged."""
    from gptwiz.planning.memory import estimate_memory
    from gptwiz.planning.presets import load_preset

    model = load_preset("small").model
    adamw = estimate_memory(model, batch_size=2, block_size=64)
    muon = estimate_memory(model, batch_size=2, block_size=64, optimizer="muon")
    assert adamw.optimizer - muon.optimizer == 4 * model.n_layer * 12 * model.n_embd ** 2
    assert muon.activations == adamw.activations and muon.total < adamw.total
