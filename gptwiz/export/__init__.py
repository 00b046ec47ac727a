"""A trained run made readable outside gptwiz: a Hugging Face GPT-2 model folder (`gptwiz export`)."""
