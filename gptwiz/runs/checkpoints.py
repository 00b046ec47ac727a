"""What a run's two checkpoints hold (iteration, val loss), read without torch, and the one rule for which of them
`gptwiz sample`, the dashboard and any later reader of weights use.

A checkpoint is torch.save's zip: a small pickle (data.pkl) of the dict of numbers and strings, whose tensors
point at separate records. Only that pickle is read, by an unpickler that builds nothing but plain dicts, lists,
numbers and strings (every class it names becomes an inert stand-in), so that listing many runs costs a few kB
read per checkpoint and no torch import.

Whether what a checkpoint holds is a gptwiz checkpoint at all is one rule, `checkpoint_problem`: this listing and
the loader behind export, eval, sample, chat and --resume (gptwiz.training.checkpoint) both follow it, so that
a checkpoint `gptwiz runs` calls unreadable is one no command loads.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.records import RecordError, shown
from gptwiz.common.safe_read import loads, open_regular
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import RunPaths, checkpoint_name

# auto: the best only where no evaluation came after it and it is not the run's starting point (else the last).
CHECKPOINT_CHOICES = ("auto", "best", "last")
_PICKLE_LIMIT = 16 << 20  # data.pkl of the largest preset is well under 1 MB: beyond this, not a gptwiz checkpoint
_TAIL_CHUNK = 1 << 16
_LINE_LIMIT = 1 << 20  # a metrics record is a few hundred bytes


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def own_val_loss(name: str, state: dict[str, Any]) -> float | None:
    """The validation loss of the weights a checkpoint holds, where it is known: recorded with them, or, for a
    run's best checkpoint (ckpt_best.pt is written only with the weights of its best), its best_val_loss."""
    own = _finite(state.get("val_loss"))
    if own is None and name == checkpoint_name("best"):
        own = _finite(state.get("best_val_loss"))
    return own


class _Inert:
    """Stands for whatever the pickle names (a tensor, a storage): accepts anything, builds nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StateDict(dict[str, Any]):
    """An OrderedDict read back as a dict; its pickled attributes (a state dict's _metadata) are dropped."""

    def __setstate__(self, state: Any) -> None:
        pass


class _NumbersOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _StateDict if (module, name) == ("collections", "OrderedDict") else _Inert

    def persistent_load(self, pid: Any) -> None:  # the tensors' storages: separate records, never read
        return None


def _read_state(path: Path) -> dict[str, Any] | None:
    """The checkpoint's dict with its tensors left out; None when it is not a readable torch.save zip."""
    try:
        fd = open_regular(path)  # never a FIFO, a folder or a device
    except OSError:
        return None
    try:
        with open(fd, "rb") as f, zipfile.ZipFile(f) as archive:
            member = next((i for i in archive.infolist() if i.filename.count("/") == 1
                           and i.filename.endswith("/data.pkl")), None)
            if member is None or member.file_size > _PICKLE_LIMIT:
                return None
            raw = archive.read(member)  # (its CRC is checked as it is read)
        state = _NumbersOnly(io.BytesIO(raw)).load()
    except Exception:  # truncated, damaged, or some other file: whatever zipfile or the unpickler raise
        return None
    return state if isinstance(state, dict) else None


def stored_json(state: dict[str, Any], key: str) -> dict[str, Any]:
    """The JSON object a checkpoint stores as text under `key`_json ("config", "extra"; {} where absent, as in
    the oldest checkpoints); a ValueError saying what is wrong with it."""
    text = state.get(f"{key}_json", "{}")
    if not isinstance(text, str):
        raise ValueError(f"its {key} is not JSON text")
    try:
        value = loads(text, f"its {key}")
    except RecordError as exc:
        raise ValueError(f"its {key} {exc.problem}") from None
    if not isinstance(value, dict):
        raise ValueError(f"its {key} is not a JSON object")
    return value


def checkpoint_problem(state: Any) -> str | None:
    """Why what a checkpoint file holds is not a gptwiz checkpoint ("its iteration -5 is not ..."), None when it
    is one: a dict with the model's weights, an iteration of 0 or more, losses that are numbers where given,
    and a stored config and extra that are JSON objects nested within the limit of every JSON gptwiz reads."""
    if not isinstance(state, dict):
        return "it holds no dict of a run's state"
    if not isinstance(state.get("model"), dict):
        return "it holds no model weights"
    it = state.get("iter")
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        return f"its iteration {shown(it)} is not a whole number of 0 or more"
    for key in ("best_val_loss", "val_loss"):
        loss = state.get(key)
        if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float))):
            return f"its {key} {shown(loss)} is not a number"
    for key in ("config", "extra"):
        try:
            stored_json(state, key)
        except ValueError as exc:
            return str(exc)
    return None


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint file as its metadata describes it; `iter` None: it is there but cannot be read."""
    path: Path
    iter: int | None
    val_loss: float | None = None

    @property
    def name(self) -> str:
        return self.path.name


def read_checkpoint_info(path: Path) -> CheckpointInfo | None:
    """None when the file is missing; an info with `iter` None when it is there but unreadable. The weights'
    CRCs are not checked here (that reads the whole file): loading the checkpoint does."""
    if not os.path.lexists(path):
        return None
    state = _read_state(path)
    if state is None or checkpoint_problem(state) is not None:
        return CheckpointInfo(path, None)
    return CheckpointInfo(path, state["iter"], own_val_loss(path.name, state))


def last_evaluation(paths: RunPaths) -> int | None:
    """The iteration of the run's latest evaluation in metrics.jsonl, None when it records none. Read from the end
    back to the first eval record found (records are appended in order, and a resume cuts off those beyond its
    checkpoint), so that a long run's file is not parsed whole."""
    try:
        fd = open_regular(paths.metrics)  # never a FIFO
    except OSError:
        return None
    try:
        end, head = os.fstat(fd).st_size, b""
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            lines = (os.pread(fd, end - start, start) + head).split(b"\n")
            head = lines.pop(0) if start else b""  # perhaps the end of a line that began in the chunk before
            if len(head) > _LINE_LIMIT:  # one over-long line: no record the trainer writes
                head = b""
            for line in reversed(lines):
                it = _eval_iter(line)
                if it is not None:
                    return it
            end = start
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _eval_iter(line: bytes) -> int | None:
    if b'"eval"' not in line:
        return None
    try:
        rec = loads(line, "metrics.jsonl")
    except RecordError:  # a torn or damaged line
        return None
    it = rec.get("iter") if isinstance(rec, dict) and rec.get("type") == "eval" else None
    return it if isinstance(it, int) and not isinstance(it, bool) and it >= 0 else None


def resume_point(paths: RunPaths) -> CheckpointInfo | None:
    """The checkpoint a resume continues from: ckpt_last.pt, or ckpt_best.pt where the last is unreadable or gone
    (as the trainer's loader falls back)."""
    last = read_checkpoint_info(paths.ckpt_last)
    if last is not None and last.iter is not None:
        return last
    best = read_checkpoint_info(paths.ckpt_best)
    return best if best is not None and best.iter is not None else last or best


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint to load, and what to tell the user about it."""
    info: CheckpointInfo
    which: str                      # "best" or "last": what the loader prefers
    passed_over: str | None = None  # why the other checkpoint was not used, where the rule chose between two
    init_from: str | None = None    # the run's weights at iteration 0 came from this run, not from random ones
    unreadable: CheckpointInfo | None = None  # the other checkpoint, there but unreadable: the loader says why

    @property
    def untrained(self) -> bool:
        return self.info.iter == 0

    @property
    def iteration_text(self) -> str:
        return "iteration unknown" if self.info.iter is None else f"iteration {self.info.iter}"

    def starting_point(self) -> str:
        """What the weights of iteration 0 are, said plainly."""
        return f"the weights it was initialised from ({self.init_from}), not trained further yet" if self.init_from \
            else "the untrained initial weights"

    def title(self) -> str:
        """`ckpt_last.pt, iteration 40` (a window title)."""
        return f"{self.info.name}, {self.iteration_text}" + (f" ({self.starting_point()})" if self.untrained else "")

    def describe(self) -> str:
        """`ckpt_best.pt (iteration 250, val loss 5.1200)`, with what the weights of iteration 0 are and why the
        other checkpoint was passed over: one line."""
        inside = self.iteration_text + (f", val loss {self.info.val_loss:.4f}" if self.info.val_loss is not None
                                        else "")
        return (f"{self.info.name} ({inside})" + (f": {self.starting_point()}" if self.untrained else "")
                + (f"; {self.passed_over}" if self.passed_over else ""))


def choose(last: CheckpointInfo | None, best: CheckpointInfo | None, last_eval: int | None,
           which: str = "auto", init_from: str | None = None) -> CheckpointChoice | None:
    """The rule. `best` or `last`: that one. `auto`: the best when it is at least as recent as the last evaluation
    (that evaluation was the best's own) and is not iteration 0 while the last is further on; else the last, with
    why the best was passed over. None when the run has neither file."""
    if which not in CHECKPOINT_CHOICES:
        raise UsageError(f"invalid --checkpoint {quote(which)}: must be best or last (or auto, the default)")
    if which != "auto":
        chosen = best if which == "best" else last
        return CheckpointChoice(chosen, which, init_from=init_from) if chosen is not None else None
    if best is None or last is None:
        only = best or last
        return CheckpointChoice(only, "best" if only is best else "last", init_from=init_from) if only else None
    if best.iter is None or last.iter is None:  # one is unreadable: the other
        return CheckpointChoice(last, "last", init_from=init_from, unreadable=best) if best.iter is None \
            else CheckpointChoice(best, "best", init_from=init_from, unreadable=last)
    # The newest evaluation the files or metrics.jsonl know of (metrics.jsonl may be torn or gone).
    newest_eval = max(i for i in (last_eval, best.iter, last.iter if last.val_loss is not None else None)
                      if i is not None)
    if best.iter >= newest_eval and not (best.iter == 0 and last.iter > 0):
        return CheckpointChoice(best, "best", init_from=init_from)
    why = (f"it is iteration 0, {'the weights the run started from' if init_from else 'the untrained initial weights'}"
           if best.iter == 0 else f"its iteration {best.iter} is older than the last evaluation (iteration {newest_eval})")
    return CheckpointChoice(last, "last", passed_over=f"not ckpt_best.pt: {why}", init_from=init_from)


def choose_checkpoint(paths: RunPaths, which: str = "auto") -> CheckpointChoice:
    """The rule applied to a run folder; a UsageError when it has no checkpoint (of the kind asked for)."""
    last, best = read_checkpoint_info(paths.ckpt_last), read_checkpoint_info(paths.ckpt_best)
    init_from = (read_json(paths.config) or {}).get("init_from")
    picked = choose(last, best, last_evaluation(paths), which, init_from if isinstance(init_from, str) else None)
    if picked is not None:
        return picked
    if last is None and best is None:
        raise UsageError(f"run {quote(paths.name)} has no checkpoint in {paths.root} yet (the first one is written at its "
                         "first evaluation)")
    other = "last" if which == "best" else "best"
    raise UsageError(f"run {quote(paths.name)} has no {checkpoint_name(which)}; it has {checkpoint_name(other)}: "
                     f"use --checkpoint {other}, or leave --checkpoint out")


__all__ = ["CHECKPOINT_CHOICES", "CheckpointChoice", "CheckpointInfo", "checkpoint_problem", "choose",
           "choose_checkpoint", "last_evaluation", "stored_json", "own_val_loss", "read_checkpoint_info", "resume_point"]
