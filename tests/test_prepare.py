"""`gptwiz prepare` and `gptwiz dataset-info`: exact tokens, weighted sampling, the val split, interrupts, bad input."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHAKESPEARE, TINY_FAST, assert_one_line_error, cli_env, run_cli

from gptwiz.common.errors import UsageError
from gptwiz.data.dataset import TokenDataset
from gptwiz.data.manifest import MANIFEST, read_manifest
from gptwiz.data.prepare import (
    PrepareOptions,
    SourceSpec,
    document_segments,
    glob_root,
    is_val_document,
    parse_source,
    parse_sources,
    prepare,
    safe_cut,
)
from gptwiz.data.tokenizer import EOT_TOKEN, get_encoding


@pytest.fixture(scope="module")
def enc():
    return get_encoding()


@pytest.fixture(scope="module")
def text() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")


def split_into_files(text: str, folder: Path, n: int, suffix: str = ".txt", offset: int = 0) -> list[str]:
    """`n` consecutive pieces of `text` as files; returns their texts in file-name order."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(n):
        doc = text[i * len(text) // n:(i + 1) * len(text) // n]
        (folder / f"doc{offset + i:04d}{suffix}").write_text(doc, encoding="utf-8")
        docs.append(doc)
    return docs


def shard_tokens(dataset: Path, source: str, split: str) -> np.ndarray:
    entry = next(s for s in read_manifest(dataset)["sources"] if s["name"] == source)
    parts = [np.fromfile(dataset / f, dtype=np.uint16) for f in entry[f"{split}_shards"]]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def documents_of(tokens: np.ndarray, enc) -> list[str]:
    """The documents in a token stream, each ending with an end-of-text token."""
    ends = np.flatnonzero(tokens == EOT_TOKEN)
    assert len(ends) == 0 or ends[-1] == len(tokens) - 1
    starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else []
    return [enc.decode(tokens[a:b].tolist()) for a, b in zip(starts, ends)]


def partials(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


# --- pure pieces -----------------------------------------------------------------------------------

def test_source_specs_parse_name_glob_and_weight():
    assert parse_source("docs:data/company_docs/*.txt") == SourceSpec("docs", "data/company_docs/*.txt", 1.0)
    assert parse_source("wiki:data/wiki/**/*.md:3") == SourceSpec("wiki", "data/wiki/**/*.md", 3.0)
    assert parse_source("a:x/*.jsonl:0.25").weight == 0.25
    for bad, fragment in [("docs", "has no glob"), ("docs:", "has no glob"), ("docs::2", "has no glob"),
                          (":x/*.txt", "has no name"), ("do cs:x/*.txt", "may hold only"),
                          ("docs:x/*.txt:0", "not a positive number"), ("docs:x/*.txt:-1", "not a positive number"),
                          ("docs:x/*.txt:abc", "not a positive number"), ("docs:x/*.txt:nan", "not a positive"),
                          ("docs:x/*.txt:inf", "not a positive number")]:
        with pytest.raises(UsageError, match=fragment):
            parse_source(bad)
    with pytest.raises(UsageError, match="two sources are named 'docs' "):
        parse_sources(["docs:a/*.txt", "docs:b/*.txt:2"])
    with pytest.raises(UsageError, match="'docs' and 'Docs' .names differing only in case"):
        parse_sources(["docs:a/*.txt", "Docs:b/*.txt"])


def test_glob_root_is_the_fixed_leading_folders():
    assert glob_root("data/company_docs/*.txt") == "data/company_docs"
    assert glob_root("data/**/*.md") == "data"
    assert glob_root("*.txt") == "."
    assert glob_root("data/one.txt") == "data"
    assert glob_root("/abs/path/[ab]*/x.txt") == "/abs/path"


def test_val_split_is_deterministic_and_near_the_fraction():
    picks = [is_val_document("docs", f"f{i}.txt", 0, 0.05) for i in range(20000)]
    assert picks == [is_val_document("docs", f"f{i}.txt", 0, 0.05) for i in range(20000)]
    assert 0.04 < sum(picks) / len(picks) < 0.06
    # The source name is part of the key: the same file list splits differently per source.
    assert picks != [is_val_document("wiki", f"f{i}.txt", 0, 0.05) for i in range(20000)]


@pytest.mark.parametrize("variant", ["lines", "crlf", "one_line", "unicode"])
def test_cutting_documents_keeps_the_tokens_exact(enc, text, variant):
    sample = text[:120_000]
    if variant == "crlf":
        sample = sample.replace("\n", "\r\n")
    elif variant == "one_line":
        sample = sample.replace("\n", " ")
    elif variant == "unicode":
        sample = sample.replace("e", "é").replace("o", "ö ").replace("\n\n", "\n  \n\u3000x 😀 ")
    blocks = [sample[i:i + 3001] for i in range(0, len(sample), 3001)]
    segments = list(document_segments(blocks, 2000))
    assert "".join(segments) == sample and len(segments) > 20
    assert sum((enc.encode_ordinary(s) for s in segments), []) == enc.encode_ordinary(sample)


def test_text_without_whitespace_is_cut_only_past_the_forced_limit():
    from gptwiz.data.prepare import SourceStats

    stats = SourceStats()
    blob = "x" * 50_000 + " tail words\nend"
    segments = list(document_segments([blob[i:i + 1000] for i in range(0, len(blob), 1000)], 2000, stats,
                                      forced_chars=20_000))
    assert "".join(segments) == blob
    assert [len(s) for s in segments[:2]] == [20_000, 20_000] and stats.forced_cuts == 2


def test_safe_cut_finds_no_place_in_text_without_whitespace():
    assert safe_cut("abcdefgh" * 100) == 0
    assert safe_cut("ab cd") == 2
    assert safe_cut("ab\ncd") == 3


# --- preparing in-process --------------------------------------------------------------------------

def _opts(tmp_path: Path, *sources: str, **kw) -> PrepareOptions:
    kw.setdefault("block_size", 64)
    return PrepareOptions(sources=list(sources), out_dir=str(tmp_path / "out"), **kw)


def test_token_count_is_exactly_tiktokens_plus_one_eot_per_document(tmp_path, enc, text):
    """Text, markdown and jsonl, read and tokenized in small pieces across shards: the counts stay exact."""
    docs = split_into_files(text[:400_000], tmp_path / "a", 30)
    docs += split_into_files(text[400_000:500_000].replace("e", "é") + " 😀", tmp_path / "a" / "sub", 4, ".md")
    lines = [text[500_000 + i * 3000:500_000 + (i + 1) * 3000] for i in range(40)]
    with open(tmp_path / "a" / "lines.jsonl", "w", encoding="utf-8") as f:
        for i, line in enumerate(lines):
            f.write(json.dumps({"text": line, "id": i}) + "\n")
            if i == 5:
                f.write("\n")  # blank lines are not documents
    docs += lines
    result = prepare(_opts(tmp_path, f"mixed:{tmp_path}/a/**/*.*", val_fraction=0.1, workers=2,
                           shard_tokens=20_000, piece_chars=5_000, read_bytes=4096))
    src = result.manifest["sources"][0]
    expected = sum(len(enc.encode_ordinary(d)) + 1 for d in docs)
    assert src["train_tokens"] + src["val_tokens"] == expected
    assert src["documents"] == len(docs) == 74 and src["files"] == 35
    assert len(src["train_shards"]) > 3  # the bounded shard size was exercised
    out = result.out_dir
    stream = np.concatenate([shard_tokens(out, "mixed", "train"), shard_tokens(out, "mixed", "val")])
    assert len(stream) == expected
    assert sorted(documents_of(stream, enc)) == sorted(docs)
    assert TokenDataset(out).tokens("train") == src["train_tokens"]


def test_an_existing_empty_out_dir_is_filled(tmp_path, text):
    split_into_files(text[:200_000], tmp_path / "docs", 4)
    (tmp_path / "out").mkdir()
    result = prepare(_opts(tmp_path, f"docs:{tmp_path}/docs/*.txt", val_fraction=0.2))
    assert (tmp_path / "out" / MANIFEST).exists() and result.manifest["totals"]["documents"] == 4
    assert partials(tmp_path) == []


def test_val_documents_never_appear_in_train(tmp_path, enc, text):
    docs = split_into_files(text, tmp_path / "docs", 200)
    result = prepare(_opts(tmp_path, f"docs:{tmp_path}/docs/*.txt", val_fraction=0.05))
    src = result.manifest["sources"][0]
    train = documents_of(shard_tokens(result.out_dir, "docs", "train"), enc)
    val = documents_of(shard_tokens(result.out_dir, "docs", "val"), enc)
    assert len(val) == src["val_documents"] >= 2
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(docs)
    # Each document went where its hash says.
    chosen = {d for i, d in enumerate(docs) if is_val_document("docs", f"doc{i:04d}.txt", 0, 0.05)}
    assert set(val) == chosen
    for doc in val:  # nor does any val text hide inside a train document
        assert doc[:200] not in "".join(train)


def test_a_source_with_few_documents_still_gets_one_val_document(tmp_path, enc, text):
    docs = split_into_files(text[:200_000], tmp_path / "few", 3)
    result = prepare(_opts(tmp_path, f"few:{tmp_path}/few/*.txt", val_fraction=0.001))
    src = result.manifest["sources"][0]
    val = documents_of(shard_tokens(result.out_dir, "few", "val"), enc)
    assert src["val_documents"] == 1 and len(val) == 1 and val[0] in docs
    assert src["documents"] == 3


def test_a_split_the_hash_left_empty_gets_the_other_splits_last_document(tmp_path, enc, text):
    # At --val_fraction 0.5, of these 4 files of source "q" the hash sends every one to val.
    names = [f"doc{i:04d}.txt" for i in range(4)]
    assert all(is_val_document("q", n, 0, 0.5) for n in names)
    docs = split_into_files(text[:200_000], tmp_path / "q", 4)
    result = prepare(_opts(tmp_path, f"q:{tmp_path}/q/*.txt", val_fraction=0.5))
    src = result.manifest["sources"][0]
    assert (src["documents"], src["val_documents"]) == (4, 3)
    assert documents_of(shard_tokens(result.out_dir, "q", "train"), enc) == [docs[-1]]
    assert documents_of(shard_tokens(result.out_dir, "q", "val"), enc) == docs[:3]


@pytest.mark.parametrize("name", ["book", "novel"])  # the hash sends "book"'s one document to val, "novel"'s to train
def test_a_single_document_is_split_by_tokens(tmp_path, enc, text, name):
    assert is_val_document(name, "one.txt", 0, 0.3) == (name == "book")
    (tmp_path / "one.txt").write_text(text, encoding="utf-8")
    result = prepare(_opts(tmp_path, f"{name}:{tmp_path}/one.txt", val_fraction=0.3, shard_tokens=40_000))
    tokens = np.array(enc.encode_ordinary(text) + [EOT_TOKEN], dtype=np.uint16)
    n_val = int(len(tokens) * 0.3)
    assert np.array_equal(shard_tokens(result.out_dir, name, "train"), tokens[:-n_val])
    assert np.array_equal(shard_tokens(result.out_dir, name, "val"), tokens[-n_val:])
    src = result.manifest["sources"][0]
    assert src["split_by"] == "tokens" and len(src["val_shards"]) == 3  # moved across shard boundaries
    assert sorted(p.name for p in result.out_dir.glob("*.bin")) == sorted(src["train_shards"] + src["val_shards"])


def test_input_file_cache_goes_through_the_same_tokenizer_with_its_last_tenth_as_val(tmp_path, enc, text):
    from gptwiz.data.cache import cache_text_file

    (tmp_path / "play.txt").write_text(text, encoding="utf-8")
    cache = cache_text_file(tmp_path / "play.txt", tmp_path / "data")
    tokens = np.array(enc.encode_ordinary(text) + [EOT_TOKEN], dtype=np.uint16)
    n_val = int(len(tokens) * 0.1)
    assert np.array_equal(shard_tokens(cache, "play", "train"), tokens[:-n_val])
    assert np.array_equal(shard_tokens(cache, "play", "val"), tokens[-n_val:])
    assert cache_text_file(tmp_path / "play.txt", tmp_path / "data") == cache  # reused, not redone
    assert [p.name for p in (tmp_path / "data" / "cache").iterdir()] == [cache.name]


def test_output_is_identical_whatever_the_worker_count(tmp_path, text):
    split_into_files(text[:600_000], tmp_path / "docs", 25)
    outs = []
    for workers in (1, 3):
        opts = PrepareOptions(sources=[f"docs:{tmp_path}/docs/*.txt"], out_dir=str(tmp_path / f"w{workers}"),
                              workers=workers, block_size=64, val_fraction=0.05, piece_chars=20_000)
        outs.append(prepare(opts).out_dir)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir()) and len(names) >= 3
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_weights_steer_sampling_not_source_sizes(tmp_path, text):
    # "big" holds about four times the tokens of "small", but weights 1 and 3 ask for a quarter and three quarters.
    split_into_files(text[:800_000], tmp_path / "big", 20)
    split_into_files(text[800_000:1_000_000], tmp_path / "small", 10)
    result = prepare(_opts(tmp_path, f"big:{tmp_path}/big/*.txt:1", f"small:{tmp_path}/small/*.txt:3",
                           val_fraction=0.1))
    sources = result.manifest["sources"]
    assert sources[0]["train_tokens"] > 3 * sources[1]["train_tokens"]
    ds = TokenDataset(result.out_dir)
    rng = np.random.default_rng(0)
    counts = np.zeros(2, dtype=np.int64)
    for _ in range(2000):
        _, _, src = ds.batch("train", 4, 8, rng)
        counts += np.bincount(src, minlength=2)
    share = counts / counts.sum()
    assert abs(share[0] - 0.25) < 0.02 and abs(share[1] - 0.75) < 0.02, share


def test_binary_files_are_skipped_and_invalid_utf8_replaced_and_counted(tmp_path, text):
    split_into_files(text[:100_000], tmp_path / "docs", 4)
    (tmp_path / "docs" / "image.txt").write_bytes(b"\x89PNG\r\n\x00\x00" + os.urandom(5000))
    (tmp_path / "docs" / "latin1.txt").write_bytes(("caf\xe9 cr\xe8me " * 2000).encode("latin-1")
                                                   + "real \ufffd kept".encode("utf-8"))
    proc = run_cli(["prepare", "--source", "docs:docs/*.txt", "--out_dir", "out", "--block_size", "64",
                    "--val_fraction", "0.2"], cwd=tmp_path, check=True)
    src = read_manifest(tmp_path / "out")["sources"][0]
    assert src["skipped_files"] == 1 and src["skipped"] == ["image.txt"]
    assert src["replaced_chars"] == 4000  # each lone latin-1 byte once; the file's own U+FFFD is not counted
    assert src["files"] == 5 and src["documents"] == 5
    assert "skipped 1 file as not text" in proc.stdout and "image.txt" in proc.stdout
    assert "replaced 4000 invalid UTF-8" in proc.stdout
    assert read_manifest(tmp_path / "out")["totals"]["skipped_files"] == 1


def test_jsonl_lines_without_text_are_ignored_and_counted(tmp_path, text):
    with open(tmp_path / "a.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"text": text[i * 5000:(i + 1) * 5000]}) + "\n")
        f.write('{"content": "no text field"}\n{not json\n')
    result = prepare(_opts(tmp_path, f"j:{tmp_path}/a.jsonl", val_fraction=0.1))
    src = result.manifest["sources"][0]
    assert src["bad_lines"] == 2 and src["documents"] == 20


# --- the command line ------------------------------------------------------------------------------

def test_the_cli_keeps_its_default_val_fraction_and_sft_its_own(tmp_path, text):
    split_into_files(text[:60_000], tmp_path / "docs", 3)
    run_cli(["prepare", "--source", "docs:docs/*.txt", "--out_dir", "out", "--block_size", "64"], cwd=tmp_path,
            check=True)
    assert read_manifest(tmp_path / "out")["val_fraction"] == 0.005 and "kind" not in read_manifest(tmp_path / "out")
    (tmp_path / "ex.jsonl").write_text("".join(json.dumps({"prompt": f"p{i}", "response": "r"}) + "\n"
                                               for i in range(10)))
    run_cli(["prepare", "--sft", "--source", "ex:ex.jsonl", "--out_dir", "sft"], cwd=tmp_path, check=True)
    assert read_manifest(tmp_path / "sft")["val_fraction"] == 0.05 and read_manifest(tmp_path / "sft")["kind"] == "sft"



def test_guide_example_2_prepare_command_runs_and_dataset_info_shows_it(tmp_path, text):
    split_into_files(text, tmp_path / "data" / "company_docs", 40)
    proc = run_cli(["prepare", "--source", "docs:data/company_docs/*.txt", "--out_dir", "data/company_shards"],
                   cwd=tmp_path, check=True)
    assert "prepared data/company_shards" in proc.stdout
    info = json.loads(run_cli(["dataset-info", "data/company_shards", "--json"], cwd=tmp_path, check=True).stdout)
    (src,) = info["sources"]
    assert src["name"] == "docs" and src["files"] == 40 and src["weight"] == 1 and src["share"] == 1
    assert src["bytes"] == len(text.encode("utf-8"))
    assert info["checksum"] == hashlib.sha256((tmp_path / "data/company_shards" / MANIFEST).read_bytes()).hexdigest()
    table = run_cli(["dataset-info", "data/company_shards"], cwd=tmp_path, check=True).stdout
    assert "docs" in table and "100.0%" in table


def test_dashed_flags_and_weights_in_dataset_info(tmp_path, text):
    split_into_files(text[:300_000], tmp_path / "a", 5)
    split_into_files(text[300_000:600_000], tmp_path / "b", 5, ".md")
    run_cli(["prepare", "--source", "a:a/*.txt:1", "--source", "b:b/*.md:3", "--out-dir", "ds",
             "--val-fraction", "0.2", "--workers", "2", "--block-size", "64"], cwd=tmp_path, check=True)
    info = json.loads(run_cli(["dataset-info", "ds", "--json"], cwd=tmp_path, check=True).stdout)
    assert [(s["name"], s["weight"], s["share"]) for s in info["sources"]] == [("a", 1, 0.25), ("b", 3, 0.75)]


def test_same_dataset_again_is_up_to_date_and_overwrite_replaces(tmp_path, text):
    split_into_files(text[:300_000], tmp_path / "docs", 10)
    args = ["prepare", "--source", "docs:docs/*.txt", "--out_dir", "out", "--block_size", "64"]
    run_cli(args, cwd=tmp_path, check=True)
    first = (tmp_path / "out" / MANIFEST).read_bytes()
    again = run_cli(args, cwd=tmp_path, check=True)
    assert "already holds this dataset" in again.stdout and "nothing to do" in again.stdout
    (tmp_path / "docs" / "doc0000.txt").write_text("changed " * 500)
    changed = run_cli(args, cwd=tmp_path)
    assert_one_line_error(changed, "already holds a different dataset", "--overwrite")
    assert (tmp_path / "out" / MANIFEST).read_bytes() == first
    run_cli(args + ["--overwrite"], cwd=tmp_path, check=True)
    assert (tmp_path / "out" / MANIFEST).read_bytes() != first
    assert partials(tmp_path) == []


def test_a_glob_that_covers_out_dir_never_reads_the_dataset_itself(tmp_path, text):
    split_into_files(text[:300_000], tmp_path / "data" / "docs", 6)
    args = ["prepare", "--source", "all:data/**/*", "--out_dir", "data/shards", "--block_size", "64",
            "--val_fraction", "0.2"]
    run_cli(args, cwd=tmp_path, check=True)
    first = read_manifest(tmp_path / "data" / "shards")["sources"][0]
    assert "already holds this dataset" in run_cli(args, cwd=tmp_path, check=True).stdout
    again = run_cli(args + ["--overwrite"], cwd=tmp_path, check=True)
    second = read_manifest(tmp_path / "data" / "shards")["sources"][0]
    assert first["files"] == second["files"] == 6 and second["skipped_files"] == 0
    assert first["train_tokens"] == second["train_tokens"]
    assert "prepared data/shards" in again.stdout


@pytest.mark.parametrize("case", ["no_match", "no_glob", "zero_weight", "word_weight", "duplicate", "different",
                                  "not_a_dataset", "broken_link", "no_permission", "too_small", "val_too_small", "short_source",
                                  "bad_fraction", "empty_files"])
def test_bad_input_is_one_line_and_leaves_no_dataset(tmp_path, text, case):
    split_into_files(text[:200_000], tmp_path / "docs", 5)
    out = ["--out_dir", "out", "--block_size", "64"]
    src = ["--source", "docs:docs/*.txt"]
    if case == "no_match":
        args, frags = ["--source", "docs:nowhere/*.txt"] + out, ["source docs", "'nowhere/*.txt'", "matches no files"]
    elif case == "no_glob":
        args, frags = ["--source", "docs"] + out, ["'docs'", "has no glob", "NAME:GLOB"]
    elif case == "zero_weight":
        args, frags = ["--source", "docs:docs/*.txt:0"] + out, ["weight '0'", "not a positive number"]
    elif case == "word_weight":
        args, frags = ["--source", "docs:docs/*.txt:heavy"] + out, ["weight 'heavy'", "not a positive number"]
    elif case == "duplicate":
        args, frags = src + ["--source", "docs:docs/doc0001.txt"] + out, ["two sources are named 'docs'"]
    elif case == "different":
        run_cli(["prepare", "--source", "other:docs/doc000[0-3].txt"] + out, cwd=tmp_path, check=True)
        args, frags = src + out, ["--out_dir out already holds a different dataset (sources: other)", "--overwrite"]
    elif case == "not_a_dataset":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "precious.txt").write_text("keep me")
        args, frags = src + out + ["--overwrite"], ["is not empty and is not a gptwiz dataset"]
    elif case == "broken_link":
        os.symlink(tmp_path / "gone.txt", tmp_path / "docs" / "link.txt")
        args, frags = src + out, ["source docs: cannot read docs/link.txt", "No such file"]
    elif case == "no_permission":
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their permissions")
        (tmp_path / "docs" / "doc0002.txt").chmod(0)
        args, frags = src + out, ["cannot read docs/doc0002.txt", "permission denied"]
    elif case == "too_small":
        (tmp_path / "tiny").mkdir()
        (tmp_path / "tiny" / "a.txt").write_text("To be, or not to be.")
        args, frags = ["--source", "t:tiny/*.txt", "--out_dir", "out"], [
            "too small: its 1 document (20 bytes) hold 9 tokens, 8 of them for training", "one block of 1025 tokens"]
    elif case == "val_too_small":
        split_into_files(text[:100_000], tmp_path / "short", 200)  # about 140 tokens each
        args, frags = ["--source", "s:short/*.txt", "--out_dir", "out"], [
            "validation split holds", "fewer than one block of 1025 tokens", "raise --val_fraction"]
    elif case == "short_source":
        (tmp_path / "tiny").mkdir()
        (tmp_path / "tiny" / "a.txt").write_text("To be, or not to be.")
        args, frags = src + ["--source", "t:tiny/*.txt:2"] + out, ["source t: its train split holds 8 tokens",
                                                                   "fewer than one block of 65", "weight 2"]
    elif case == "bad_fraction":
        args, frags = src + out + ["--val_fraction", "0.9"], ["--val_fraction 0.9"]
    elif case == "empty_files":
        (tmp_path / "blank").mkdir()
        (tmp_path / "blank" / "a.txt").write_text("")
        (tmp_path / "blank" / "b.txt").write_bytes(b"\x00\x01")
        args, frags = ["--source", "blank:blank/*.txt"] + out, ["source blank", "hold no text", "1 skipped as not text"]
    before = (tmp_path / "out" / MANIFEST).read_bytes() if (tmp_path / "out" / MANIFEST).exists() else None
    proc = run_cli(["prepare", *args], cwd=tmp_path)
    assert_one_line_error(proc, *frags)
    after = (tmp_path / "out" / MANIFEST).read_bytes() if (tmp_path / "out" / MANIFEST).exists() else None
    assert after == before  # nothing new that could pass for a dataset
    assert partials(tmp_path) == []
    if case == "not_a_dataset":
        assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_dataset_info_on_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "half").mkdir()
    assert_one_line_error(run_cli(["dataset-info", "half"], cwd=tmp_path), "half is not a prepared dataset")
    assert_one_line_error(run_cli(["dataset-info", "nothing"], cwd=tmp_path), "nothing does not exist")


# --- interrupts and training -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory, text) -> Path:
    """About 16 MB in 160 files: prepare takes seconds, long enough to be stopped mid-way."""
    root = tmp_path_factory.mktemp("big")
    for copy in range(16):
        split_into_files(text.replace("the", f"the{copy}"), root / "docs", 10, offset=10 * copy)
    return root


def _start_prepare(cwd: Path, out: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gptwiz", "prepare", "--source", "docs:docs/*.txt",
                             "--out_dir", out, "--workers", "2"], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_writing(cwd: Path, out: str, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        for p in cwd.glob(f".{out}.partial-*"):
            if any(f.stat().st_size > 0 for f in p.glob("*.bin")):
                return p
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("prepare never started writing shards")


@pytest.mark.slow
def test_kill_midway_leaves_no_manifest_and_a_rerun_succeeds(big_corpus):
    proc = _start_prepare(big_corpus, "killed")
    partial = _wait_until_writing(big_corpus, "killed", proc)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL  # it really was stopped mid-way, not after finishing
    assert not (big_corpus / "killed").exists()
    assert partial.exists() and not (partial / MANIFEST).exists()
    with pytest.raises(UsageError, match="not a prepared dataset"):
        read_manifest(partial)  # what the trainer says about such a folder
    rerun = run_cli(["prepare", "--source", "docs:docs/*.txt", "--out_dir", "killed"], cwd=big_corpus, check=True)
    assert "prepared killed" in rerun.stdout
    assert not partial.exists() and partials(big_corpus) == []
    assert read_manifest(big_corpus / "killed")["totals"]["documents"] == 160


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 130)])
def test_ctrl_c_or_sigterm_removes_partial_output(big_corpus, sig, code):
    for attempt in range(3):
        out = f"stopped{int(sig)}-{attempt}"
        proc = _start_prepare(big_corpus, out)
        _wait_until_writing(big_corpus, out, proc)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert [p for p in partials(big_corpus) if p.name.startswith(f".{out}.")] == []
        if (big_corpus / out).exists():
            # The signal came after the last shard (this test's process starved on a busy machine): the dataset
            # is whole, and the next attempt stops one mid-way.
            assert read_manifest(big_corpus / out)["totals"]["documents"] == 160
            continue
        assert proc.returncode == code, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr
        return
    pytest.fail("prepare finished before the signal reached it, three times")


@pytest.mark.slow
def test_train_from_a_prepared_dataset_records_its_manifest(tmp_path, text):
    split_into_files(text[:500_000], tmp_path / "a", 10)
    split_into_files(text[500_000:], tmp_path / "b", 10)
    run_cli(["prepare", "--source", "a:a/*.txt:1", "--source", "b:b/*.txt:3", "--out_dir", "ds",
             "--val_fraction", "0.1"], cwd=tmp_path, check=True)
    run_cli(["train", *TINY_FAST, "--model_name", "fromds", "--dataset_dir", "ds", "--max_iters", "4",
             "--eval_interval", "2"], cwd=tmp_path, check=True)
    config = json.loads((tmp_path / "runs" / "fromds" / "config.json").read_text())
    manifest = tmp_path / "ds" / MANIFEST
    assert config["data"]["kind"] == "dataset_dir"
    assert config["data"]["manifest"] == str(manifest.resolve())
    assert config["data"]["manifest_checksum"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert [s["name"] for s in config["data"]["sources"]] == ["a", "b"]
    status = json.loads((tmp_path / "runs" / "fromds" / "status.json").read_text())
    assert status["state"] == "finished"
