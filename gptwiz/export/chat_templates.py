"""gptwiz's chat template (gptwiz.data.chat_template) in the two template languages other programs render it with:
Jinja, which transformers' apply_chat_template and llama.cpp read from `chat_template` (tokenizer_config.json,
the GGUF's tokenizer.chat_template), and Go's text/template, which Ollama reads from a Modelfile's TEMPLATE.

Both give the text gptwiz's chat gives the model, which other programs then tokenize whole; gptwiz tokenizes
each piece on its own. The texts only part where a piece ends in a blank line and the next begins with a
character: the blank line closing a system text is one token ("\\n\\n") in gptwiz's prompt and two ("\\n", "\\n")
in theirs. Everything else (each turn's headers, the user's text, the answers and the end-of-text after each)
has the same tokens.
"""

from __future__ import annotations

import json

from gptwiz.data.bpe import EOT_TEXT
from gptwiz.data.chat_template import ASSISTANT_HEADER, SYSTEM_HEADER, TEMPLATE_NAME, TURN_SEPARATOR, USER_HEADER


def _lit(text: str) -> str:
    """A Jinja string literal: JSON's escapes (\\n, \\") are Jinja's too."""
    return json.dumps(text)


def jinja_template() -> str:
    """The template for `messages` (role system, user or assistant) with add_generation_prompt, as Hugging Face
    chat templates are written: a system text first, each answer closed by end-of-text and followed by the
    turn separator when a turn comes after it, and the assistant's header to end a prompt."""
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}"
        f"{{{{- {_lit(SYSTEM_HEADER)} + message['content'] + {_lit(TURN_SEPARATOR)} -}}}}"
        "{%- elif message['role'] == 'user' -%}"
        f"{{{{- {_lit(USER_HEADER)} + message['content'] + {_lit(TURN_SEPARATOR)} -}}}}"
        "{%- elif message['role'] == 'assistant' -%}"
        f"{{{{- {_lit(ASSISTANT_HEADER)} + message['content'] + {_lit(EOT_TEXT)} -}}}}"
        f"{{%- if not loop.last -%}}{{{{- {_lit(TURN_SEPARATOR)} -}}}}{{%- endif -%}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{- {_lit(ASSISTANT_HEADER)} -}}}}{{%- endif -%}}"
    )


def ollama_template() -> str:
    """The Modelfile TEMPLATE: Ollama passes the system text as .System (and in .Messages, skipped here) and the
    conversation as .Messages; the prompt ends with the assistant's header after the last user message. Text
    between the actions is literal, newlines included."""
    return (
        f"{{{{ if .System }}}}{SYSTEM_HEADER}{{{{ .System }}}}{TURN_SEPARATOR}{{{{ end }}}}"
        "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        f'{{{{ if eq .Role "user" }}}}{USER_HEADER}{{{{ .Content }}}}{TURN_SEPARATOR}'
        f"{{{{ if $last }}}}{ASSISTANT_HEADER}{{{{ end }}}}"
        f'{{{{ else if eq .Role "assistant" }}}}{ASSISTANT_HEADER}{{{{ .Content }}}}'
        f"{{{{ if not $last }}}}{EOT_TEXT}{TURN_SEPARATOR}{{{{ end }}}}"
        "{{ end }}{{ end }}"
    )


def known_template(template: str | None) -> bool:
    """Whether `template` (a run's data.sft.template) is the one this gptwiz can write out."""
    return template == TEMPLATE_NAME
