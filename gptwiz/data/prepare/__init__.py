"""`gptwiz prepare`: folders of documents from several weighted sources -> one token dataset.

The pipeline, all of it streamed so memory stays bounded whatever the corpus size:
  plan      (sources) glob every source, stat its files, refuse bad input before any work;
  read      (reading, pieces; main thread) read files in blocks, decode UTF-8, cut documents at places
            where tokenizing the halves apart gives exactly the tokens of the whole, and pack them into
            pieces of about a megabyte, each bound for one source's train or val split;
  tokenize  (tokenizing; a thread pool: tiktoken releases the GIL) each piece -> uint16 tokens;
  write     (shards; main thread, in submission order) append them to bounded shard files.
Results are consumed in the order they were submitted, so the shards are the same byte for byte
whatever the number of workers.

Everything is written into a hidden folder beside out_dir (out_dir); the manifest is written last,
atomically, and the folder is then renamed into place (pipeline). An interrupt or a full disk removes the
folder; a kill leaves it behind (never at out_dir), and the next prepare of that out_dir removes it, or puts it
in place when the kill came between the renames that swap the old dataset for the new.
"""

from gptwiz.data.prepare.options import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_VAL_FRACTION,
    PrepareOptions,
    PrepareResult,
    validate_options,
)
from gptwiz.data.prepare.pieces import is_val_document
from gptwiz.data.prepare.pipeline import build_dataset, check_trainable, prepare, tokenize_text_file
from gptwiz.data.prepare.progress import PrepareProgress, RichPrepareProgress
from gptwiz.data.prepare.reading import FORCED_CUT_CHARS, SourceStats, document_segments, safe_cut
from gptwiz.data.prepare.sources import (
    PlannedFile,
    SourcePlan,
    SourceSpec,
    glob_root,
    parse_source,
    parse_sources,
    plan_source,
)

__all__ = [
    "DEFAULT_BLOCK_SIZE", "DEFAULT_VAL_FRACTION", "FORCED_CUT_CHARS", "PlannedFile", "PrepareOptions",
    "PrepareProgress", "PrepareResult", "RichPrepareProgress", "SourcePlan", "SourceSpec", "SourceStats",
    "build_dataset", "check_trainable", "document_segments", "glob_root", "is_val_document", "parse_source",
    "parse_sources", "plan_source", "prepare", "safe_cut", "tokenize_text_file", "validate_options",
]
