"""What `gptwiz export` can write, torch-free so that the command line's parser (and `gptwiz --help`) names the
choices without importing the export itself."""

from __future__ import annotations

FORMATS = ("hf", "gguf")  # a Hugging Face GPT-2 folder, or a GGUF file for llama.cpp with an Ollama Modelfile
OUTTYPES = ("f32", "f16", "q8_0")  # a GGUF's weight types
DEFAULT_OUTTYPE = "f16"  # llama.cpp's converter's default for a float32 model (its --outtype f16)
