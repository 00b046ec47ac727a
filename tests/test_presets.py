import json
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, cli_env, run_cli

from gptwiz.common.errors import UsageError
from gptwiz.model.config import count_params
from gptwiz.model.gpt import GPT
from gptwiz.planning.presets import PRESETS_DIR, load_all, load_preset

NOMINAL = {"tiny": 11e6, "small": 40e6, "150M": 150e6, "200M": 200e6, "150M_1024": 150e6,
           "350M_1024": 350e6, "750M_1024": 750e6, "750M_1024_domain_adapt": 750e6}


def test_all_guide_presets_exist():
    assert sorted(p.name for p in load_all()) == sorted(NOMINAL)


@pytest.mark.parametrize("name", sorted(NOMINAL))
def test_param_count_within_ten_percent_of_nominal(name):
    preset = load_preset(name)
    with torch.device("meta"):  # no memory: 750M parameters on the meta device cost nothing
        model = GPT(preset.model)
    n = model.num_params()
    assert n == count_params(preset.model)
    assert abs(n / NOMINAL[name] - 1) <= 0.10, (name, n)
    assert preset.model.vocab_size >= 50257 and preset.model.vocab_size % 64 == 0


def test_training_settings_follow_recommended_combinations():
    for p in load_all():
        assert p.model.dropout == 0.1
        assert p.description and p.use_cases
    assert load_preset("750M_1024_domain_adapt").train.learning_rate == 5e-5
    assert 32 <= load_preset("tiny").train.batch_size <= 64
    assert 12 <= load_preset("350M_1024").train.batch_size <= 16
    assert load_preset("350M_1024").train.learning_rate == 2e-4
    assert 1e-4 <= load_preset("750M_1024").train.learning_rate <= 3e-4


def test_guide_paths_and_bare_names_resolve():
    assert load_preset("configs/pretrain/small.json").name == "small"
    assert load_preset("presets/small.json").name == "small"
    assert load_preset(str(PRESETS_DIR / "150M.json")).name == "150M"


def _write(tmp_path: Path, **changes) -> str:
    data = json.loads((PRESETS_DIR / "tiny.json").read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("changes, key", [
    ({"n_lyer": 4}, "n_lyer"),
    ({"n_embd": 190}, "n_embd"),
    ({"n_layer": 0}, "n_layer"),
    ({"batch_size": -4}, "batch_size"),
    ({"learning_rate": 1.5}, "learning_rate"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"block_size": "256"}, "block_size"),
])
def test_invalid_preset_names_file_and_key(tmp_path, changes, key):
    path = _write(tmp_path, **changes)
    with pytest.raises(UsageError) as err:
        load_preset(path)
    msg = str(err.value)
    assert path in msg and f"'{key}'" in msg and "\n" not in msg


def test_presets_json_lists_every_preset(tmp_path):
    proc = run_cli(["presets", "--json"], cwd=tmp_path, check=True)
    rows = json.loads(proc.stdout)
    assert {r["name"] for r in rows} == set(NOMINAL)
    for r in rows:
        assert {"name", "params", "n_layer", "n_head", "n_embd", "block_size"} <= set(r)


def test_malformed_preset_file_is_one_line_error(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"n_layer": 4,')
    proc = run_cli(["train", "--config_file", str(bad), "--input_file", "x.txt"], cwd=tmp_path)
    assert_one_line_error(proc, str(bad), "JSON")


def test_a_preset_needing_more_than_a_larger_one_says_why() -> None:
    from gptwiz.planning.policy import preset_memory
    from gptwiz.planning.preset_notes import heavier_than_larger

    estimates = [(p, preset_memory(p)) for p in load_all()]
    heavier = heavier_than_larger(estimates)
    assert all(h.estimate.total > preset_memory(h.larger).total for h in heavier)
    assert [h.line() for h in heavier if h.smaller.name == "tiny"] == [
        "tiny: batch 64 (small: 32); the logits, batch × block × 50,304, weigh most"]
    assert "150M_1024: block 1024 (200M: 256); the saved activations weigh most" in [h.line() for h in heavier]
    # Computed, not written down: at small's batch of 32, tiny needs less than small, and its note goes.
    tiny = load_preset("tiny").with_overrides(batch_size=32)
    again = heavier_than_larger([(tiny, preset_memory(tiny))] + estimates[1:])
    assert not [h for h in again if h.smaller.name == "tiny"]


def test_presets_footnote_fits_80_columns_and_is_in_the_json(tmp_path):
    proc = run_cli(["presets"], cwd=tmp_path, env=cli_env(COLUMNS="80"), check=True)
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert any(line.startswith("tiny ") and line.rstrip().endswith("GiB*") for line in lines)
    assert "  tiny: batch 64 (small: 32); the logits, batch × block × 50,304, weigh most" in lines
    rows = {r["name"]: r for r in json.loads(run_cli(["presets", "--json"], cwd=tmp_path, check=True).stdout)}
    assert rows["tiny"]["estimate_notes"] == ["tiny: batch 64 (small: 32); the logits, batch × block × 50,304, weigh most"]
    assert rows["small"]["estimate_notes"] == []
