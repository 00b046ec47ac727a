"""`gptwiz dataset-info`: a prepared dataset's manifest as a table (or JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.data.manifest import MANIFEST, is_sft, manifest_checksum, read_manifest


def dataset_info(dataset_dir: Path | str) -> dict[str, Any]:
    """Sources with their files, bytes, tokens, weight and share of the sampled sequences."""
    d = Path(dataset_dir)
    if not d.is_dir():
        raise UsageError(f"{d} does not exist or is not a folder (give a dataset folder made by `gptwiz prepare`)")
    manifest = read_manifest(d)
    sources = manifest["sources"]
    weight_sum = sum(float(s.get("weight", 0)) for s in sources) or 1.0
    rows = []
    for s in sources:
        train, val = int(s.get("train_tokens", 0)), int(s.get("val_tokens", 0))
        rows.append({
            "name": s["name"], "glob": s.get("glob"), "files": int(s.get("files", 0)),
            "skipped_files": int(s.get("skipped_files", 0)), "bytes": int(s.get("bytes", 0)),
            "documents": int(s.get("documents", 0)), "val_documents": s.get("val_documents"),
            "train_tokens": train, "val_tokens": val, "tokens": train + val,
            "replaced_chars": int(s.get("replaced_chars", 0)),
            "weight": float(s.get("weight", 0)), "share": float(s.get("weight", 0)) / weight_sum,
        })
    keys = ("files", "skipped_files", "bytes", "documents", "train_tokens", "val_tokens", "tokens", "replaced_chars")
    info = {
        "dir": str(d.resolve()), "manifest": str((d / MANIFEST).resolve()), "checksum": manifest_checksum(d),
        "format_version": manifest.get("format_version"), "tokenizer": manifest.get("tokenizer"),
        "vocab_size": manifest.get("vocab_size"), "val_fraction": manifest.get("val_fraction"),
        "sources": rows, "totals": {k: sum(r[k] for r in rows) for k in keys},
        "kind": manifest.get("kind", "text"),
    }
    if is_sft(manifest):
        info["sft"] = sft_info(manifest)
    return info


def sft_info(manifest: dict[str, Any]) -> dict[str, Any]:
    """An instruction dataset's examples, and its tokens split into answers (trained on) and prompts."""
    sft = manifest["sft"]
    totals = manifest.get("totals", {})
    out: dict[str, Any] = {"template": sft["template"], "block_size": sft["block_size"],
                           "truncated": int(sft.get("truncated", 0)), "bad_lines": int(sft.get("bad_lines", 0))}
    for split in ("train", "val"):
        tokens, trained = int(totals.get(f"{split}_tokens", 0)), int(sft[f"{split}_trained_tokens"])
        out[split] = {"examples": int(sft[f"{split}_examples"]), "trained_tokens": trained,
                      "prompt_tokens": tokens - trained}
    return out
