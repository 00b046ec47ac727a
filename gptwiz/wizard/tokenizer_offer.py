"""Whether the dataset step offers a tokenizer of the data's own (`gptwiz prepare --tokenizer bpe:8192`), and the
gain it predicts: the training FLOPs a token of the preset the hardware allows, with GPT-2's 50,304 entries
against a vocabulary of 8,192 (the LM head is most of a small model's work: 81% of tiny's). Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gptwiz.model.config import padded_vocab, training_flops_per_token
from gptwiz.planning.guide_tables import hardware_cap
from gptwiz.planning.presets import load_preset
from gptwiz.wizard.state import DatasetChoice

OWN_TOKENIZER = "bpe:8192"
OWN_TOKENS = 8192
# A vocabulary of 8,192 needs text that repeats that many pairs: tinyshakespeare's 1.1 MB trains all of it, and
# prepare refuses a corpus too small for the size asked.
OFFER_MIN_BYTES = 1_000_000


@dataclass(frozen=True)
class TokenizerOffer:
    """A tokenizer of the data's own, offered for the preset the hardware allows."""
    preset: str
    flops_ratio: float   # training FLOPs a token with GPT-2's vocabulary over with OWN_TOKENS

    def line(self) -> str:
        return (f"a tokenizer of this text's own ({OWN_TOKENIZER}): a token of {self.preset} costs "
                f"{self.flops_ratio:.1f}x fewer FLOPs")


def tokenizer_offer(choice: DatasetChoice | None, use_case: str | None, vram_gb: float) -> TokenizerOffer | None:
    """The offer for text the wizard prepares (a file, a folder or a glob) of at least OFFER_MIN_BYTES; None for
    a prepared dataset (its tokenizer is made), the demo corpus, text prepared already, or too little text."""
    if choice is None or choice.kind not in ("input_file", "sources") or choice.bytes < OFFER_MIN_BYTES \
            or choice.prepared_dir is not None:
        return None
    preset = load_preset(hardware_cap(use_case or "testing", vram_gb)[0])
    own = replace(preset.model, vocab_size=padded_vocab(OWN_TOKENS))
    return TokenizerOffer(preset.name, training_flops_per_token(preset.model) / training_flops_per_token(own))


def with_tokenizer(choice: DatasetChoice, own: bool) -> DatasetChoice:
    """The choice trained with a tokenizer of its own (prepared with it), or with GPT-2's."""
    if own:
        return replace(choice, tokenizer=OWN_TOKENIZER, vocab_tokens=OWN_TOKENS)
    return replace(choice, tokenizer="gpt2", vocab_tokens=None)


__all__ = ["OWN_TOKENIZER", "OWN_TOKENS", "OFFER_MIN_BYTES", "TokenizerOffer", "tokenizer_offer", "with_tokenizer"]
