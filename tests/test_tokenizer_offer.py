"""The wizard's dataset step offers a tokenizer of the text's own (gptwiz.wizard.tokenizer_offer): where, what it
predicts, and what choosing it changes: the preparation, the train command, and the memory, time and quality
the recommendation screen predicts."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SHAKESPEARE
from test_tui_wizard import CPU_ONLY, screen_id, wizard_app
from tui_support import async_test, flat, screen_text, wait_for

from gptwiz.model.config import training_flops_per_token
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.presets import load_preset
from gptwiz.wizard.preparing import prepare_choice
from gptwiz.wizard.services import estimate_bytes, quality_for, times_for
from gptwiz.wizard.state import DatasetChoice, WizardState, inspect_dataset, prepared_dir_for
from gptwiz.wizard.tokenizer_offer import OFFER_MIN_BYTES, OWN_TOKENIZER, tokenizer_offer, with_tokenizer


def test_the_offer_is_for_text_to_prepare_and_predicts_the_heads_share() -> None:
    text = DatasetChoice("input_file", "t.txt", 1, 2_000_000)
    tiny = tokenizer_offer(text, "testing", 3.0)  # a card under 4 GB allows tiny
    small = tokenizer_offer(text, "testing", 0.0)  # no GPU: at most small
    assert tiny is not None and small is not None and (tiny.preset, small.preset) == ("tiny", "small")
    model = load_preset("tiny").model
    assert tiny.flops_ratio == pytest.approx(training_flops_per_token(model) / training_flops_per_token(
        replace(model, vocab_size=8192)))
    assert tiny.flops_ratio > 3 > small.flops_ratio > 1.3  # the head is most of tiny, half of small
    assert "3." in tiny.line() and OWN_TOKENIZER in tiny.line()
    assert tokenizer_offer(replace(text, kind="sources"), "testing", 0.0) is not None
    for none in (replace(text, bytes=OFFER_MIN_BYTES - 1), replace(text, kind="dataset_dir"),
                 replace(text, kind="demo"), replace(text, prepared_dir="data/x-prepared"), None):
        assert tokenizer_offer(none, "testing", 0.0) is None


def test_a_text_file_with_its_own_tokenizer_is_prepared_and_trained_from_the_folder(tmp_path: Path) -> None:
    text = tmp_path / "plays.txt"
    shutil.copy(SHAKESPEARE, text)
    choice = with_tokenizer(inspect_dataset(str(text)), True)
    assert choice.needs_prepare and choice.vocab_tokens == 8192
    assert not with_tokenizer(choice, False).needs_prepare  # GPT-2's: trained from the file as it is
    data = tmp_path / "data"
    done = prepare_choice(choice, data)
    assert Path(done.prepared_dir or "") == prepared_dir_for(str(text), data, OWN_TOKENIZER) == \
        data / "plays-bpe8192-prepared"
    assert (data / "plays-bpe8192-prepared" / "tokenizer.json").is_file() and done.vocab_tokens == 8192
    state = WizardState(use_case="testing", dataset=done, data_dir=tmp_path / "elsewhere",
                        knobs=Knobs("tiny", 128, 8, 1, 1e-3, 300))
    assert state.data_args() == ["--dataset_dir", done.prepared_dir] and state.vocab_size == 8192
    assert "--data_dir" not in state.train_args()  # the folder is prepared: no --input_file cache to place
    again = inspect_dataset(str(data / "plays-bpe8192-prepared"))  # picked later from the list
    assert (again.tokenizer, again.vocab_tokens) == (OWN_TOKENIZER, 8192) and "tokenizer bpe:8192" in again.describe()


def test_the_predictions_follow_the_datas_vocabulary() -> None:
    knobs = Knobs("tiny", 128, 8, 1, 1e-3, 300)
    gpt2 = WizardState(use_case="testing", dataset=DatasetChoice("dataset_dir", "d", 1, 2_000_000, 400_000,
                                                                 prepared_dir="d"))
    own = replace(gpt2, dataset=replace(gpt2.dataset, tokenizer=OWN_TOKENIZER, vocab_tokens=8192))
    assert gpt2.vocab_size is None and own.vocab_size == 8192
    assert estimate_bytes(knobs, own) < estimate_bytes(knobs, gpt2)  # the logits, a sixth as wide

    from test_timing import throughput

    speed = throughput(dtype="float32")
    times = [times_for(knobs, s, speed) for s in (gpt2, own)]
    assert times[0] is not None and times[1] is not None and times[1].run_s < times[0].run_s / 2
    assert times[0].label == "" and "8,192-entry vocabulary (the reasons: GPT-2's)" in times[1].label
    from gptwiz.planning.quality import QUALITY_MODEL

    q = [quality_for(knobs, s, None, QUALITY_MODEL) for s in (gpt2, own)]
    assert q[0] is not None and q[1] is not None and q[1].val_loss != q[0].val_loss  # ln V: the first phase


@async_test
async def test_ctrl_o_prepares_the_text_with_its_own_tokenizer(tmp_path: Path) -> None:
    text = tmp_path / "plays.txt"
    shutil.copy(SHAKESPEARE, text)
    app = wizard_app(tmp_path, CPU_ONLY)
    async with app.run_test(size=(100, 30)) as pilot:
        app.wizard.use_case = "testing"
        from gptwiz.tui.screens.dataset import DatasetScreen

        await app.push_screen(DatasetScreen())
        await wait_for(pilot, lambda: screen_id(pilot) == "dataset")
        app.screen.query_one("#path").value = str(text)
        await wait_for(pilot, lambda: app.screen.inspections > 0)
        assert f"^o: a tokenizer of this text's own ({OWN_TOKENIZER})" in flat(screen_text(app))
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: "✓ a tokenizer of this text's own" in flat(screen_text(app)))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.wizard.dataset is not None, timeout=60)
        d = app.wizard.dataset
        assert d.tokenizer == OWN_TOKENIZER and Path(d.prepared_dir or "").name == "plays-bpe8192-prepared"
        assert app.wizard.data_args()[0] == "--dataset_dir"
