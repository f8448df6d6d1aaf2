"""A character-level Qwen2 tokenizer with a ChatML chat template, built locally (no download).

Why characters: the task's prompts and answers are short digit strings, so one token per character
keeps the vocabulary tiny (a ~50-row embedding) and every answer a few tokens long. Why *Qwen2's*
tokenizer class: ``transformers`` loads any tokenizer saved next to a Qwen2 model as
``Qwen2Tokenizer``, which rebuilds a byte-level BPE from the saved vocabulary; so we build exactly
that (a byte-level vocabulary of single characters, no merges) and the tokenizer behaves the same
when verl reloads it in every worker. The ChatML template is what verl's dataset applies
(``apply_chat_template(..., add_generation_prompt=True)``); ``<|im_end|>`` ends a turn and is the
token the rollout stops on.
"""

from __future__ import annotations

import string

PAD, BOS_TURN, EOS_TURN = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, BOS_TURN, EOS_TURN)
# Everything the task's prompts, answers and the ChatML frame contain.
CHARACTERS = string.digits + string.ascii_lowercase + "+-=*?:., \n"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_level(char: str) -> str:
    """The character byte-level BPE uses for a one-byte character (GPT-2's ``bytes_to_unicode``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    byte = ord(char)
    if byte in printable:
        return char
    return chr(256 + [b for b in range(256) if b not in printable].index(byte))


def build_tokenizer():
    """Return a ``Qwen2Tokenizer`` over single characters, with the ChatML template."""
    from transformers import Qwen2Tokenizer

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({_byte_level(c): len(SPECIAL_TOKENS) + i for i, c in enumerate(CHARACTERS)})
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=PAD,
        eos_token=EOS_TURN,
        pad_token=PAD,
        extra_special_tokens=[BOS_TURN],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer
