"""A trained run made readable outside gptwiz (`gptwiz export`): a Hugging Face GPT-2 model folder, or a GGUF file
for llama.cpp and Ollama."""
