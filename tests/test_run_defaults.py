"""What a run trains with when the user names no optimizer and no dropout: the small presets' Muon (AdamW where
Muon cannot run), and no dropout for a run that sees its data at most once, decided alike by the trainer, the
probe, `estimate`, `recommend` and the wizard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import SHAKESPEARE

from gptwiz.data.facts import ASSUMED_DATA
from gptwiz.planning.policy import run_dropout
from gptwiz.planning.presets import load_preset
from gptwiz.planning.recommend import recommend
from gptwiz.training.optimizers import preset_optimizer
from gptwiz.training.options import TrainOptions
from gptwiz.training.probe.options import ProbeOptions
from gptwiz.training.probe.plan import make_plan
from gptwiz.training.resolve import resolve_options


def test_dropout_only_for_a_run_that_repeats_its_data() -> None:
    assert run_dropout(0.1, run_tokens=1000, train_tokens=1000) == 0.0
    assert run_dropout(0.1, run_tokens=1001, train_tokens=1000) == 0.1
    assert run_dropout(0.1, run_tokens=10, train_tokens=None) == 0.1  # unknown data: the preset's


def test_the_small_presets_train_with_muon_where_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [load_preset(p).train.optimizer for p in ("tiny", "small", "150M")] == ["muon", "muon", "adamw"]
    import gptwiz.training.optimizers as optimizers

    monkeypatch.setattr(optimizers, "cpu_has_fast_bf16", lambda: True)
    assert preset_optimizer("muon", None, fsdp=False, device="cpu") == "muon"
    assert preset_optimizer("muon", None, fsdp=True, device="cpu") == "adamw"     # Muon needs each matrix whole
    assert preset_optimizer("muon", "adamw", fsdp=False, device="cpu") == "adamw"
    assert preset_optimizer("adamw", "muon", fsdp=True, device="cpu") == "muon"   # given: refused later, in its words
    monkeypatch.setattr(optimizers, "cpu_has_fast_bf16", lambda: False)          # its bf16 matmuls slow here
    assert preset_optimizer("muon", None, fsdp=False, device="cpu") == "adamw"
    assert preset_optimizer("muon", None, fsdp=False, device="cuda:0") == "muon"
    assert preset_optimizer("muon", "muon", fsdp=False, device="cpu") == "muon"   # given: the user's choice
    monkeypatch.delattr(torch.optim, "Muon")                                      # a torch before 2.9
    assert preset_optimizer("muon", None, fsdp=False, device="cuda:0") == "adamw"


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "t.txt"
    path.write_text(SHAKESPEARE.read_text()[:60_000])  # about 15,000 tokens, 90% of them for training
    return path


def _resolved(text: Path, tmp: Path, **given: object) -> tuple[float, str]:
    opts = TrainOptions(config_file="tiny", input_file=str(text), batch_size=2, block_size=32, dtype="float32",
                        runs_dir=str(tmp / "runs"), data_dir=str(text.parent / "data"))
    cfg = resolve_options(replace(opts, **given)).cfg
    return cfg.model.dropout, cfg.train.optimizer


def test_the_trainer_decides_dropout_by_the_runs_length(text: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import gptwiz.training.optimizers as optimizers

    monkeypatch.setattr(optimizers, "cpu_has_fast_bf16", lambda: True)  # Muon's, whatever this CPU
    assert _resolved(text, tmp_path, max_iters=20) == (0.0, "muon")        # 1,280 tokens: a fraction of a pass
    assert _resolved(text, tmp_path, max_iters=400) == (0.1, "muon")       # 25,600 tokens: the data repeats
    assert _resolved(text, tmp_path, max_iters=20, dropout=0.2, optimizer="adamw") == (0.2, "adamw")


def test_the_probe_takes_the_full_runs_dropout_not_its_own(text: Path, tmp_path: Path) -> None:
    def probed(max_iters: int) -> float:
        opts = ProbeOptions(config_file="tiny", input_file=str(text), batch_size=2, block_size=32,
                            max_iters=max_iters, device="cpu", dtype="float32", data_dir=str(text.parent / "data"))
        return make_plan(opts, tmp_path).preset.model.dropout

    assert probed(200) == 0.0      # the run: 12,800 tokens, one pass
    assert probed(2000) == 0.1     # the run repeats the data, though the probe's 100 iterations would not


def test_the_recommendation_drops_dropout_for_a_single_pass() -> None:
    def pick(train_tokens: int) -> tuple[float | None, list[str]]:
        rec = recommend("testing", 0, train_tokens * 4, facts=replace(ASSUMED_DATA, train_tokens=train_tokens))
        return rec.knobs.dropout, [r for r in rec.reasons if "dropout 0," in r]

    dropout, reasons = pick(500_000_000)
    assert dropout == 0.0 and len(reasons) == 1 and "each at most once" in reasons[0]
    assert pick(1_000_000) == (0.1, [])  # tiny's 2,000 iterations of 32 x 256 tokens: 16 passes
