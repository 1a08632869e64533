"""Token counts of an example's sequences: a labelled estimate, or exact with a local tokenizer (batched).

transformers is imported only when a tokenizer is given.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from advisor.datacheck.formats import Example, first_line, terminal_safe
from advisor.datacheck.report import DataCheckError

# OpenAI's tokenizer page: "one token generally corresponds to ~4 characters of text for common English
# text". Other languages and code use more tokens per character, so the estimate is labelled as such.
CHARS_PER_TOKEN = 4
# OpenAI cookbook "How to count tokens with tiktoken": every chat message adds 3 tokens of formatting.
TOKENS_PER_MESSAGE = 3
ESTIMATE_METHOD = f"estimate: ~{CHARS_PER_TOKEN} characters per token + {TOKENS_PER_MESSAGE} per chat message"
#: examples per batch call of a fast tokenizer
TOKENIZE_BATCH = 512
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


class TokenCounter:
    """Counts the tokens of an example's sequences: estimated, or with a real tokenizer (batched)."""

    exact = False
    method = ESTIMATE_METHOD

    @staticmethod
    def make(tokenizer: Any) -> TokenCounter:
        if tokenizer is None:
            return TokenCounter()
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(tokenizer)
        return HFCounter(tokenizer)

    def plan(self, ex: Example) -> list[tuple[list[tuple[str, bool]], int]]:
        """Per sequence: the texts to encode (with or without special tokens) and a constant to add."""
        out = []
        for seq in ex.sequences:
            if seq[0] == "chat":
                msgs, tools = seq[1], seq[2]
                chars = sum(len(m.get("content") or "") for m in msgs)
                chars += sum(len(json.dumps(m["tool_calls"], ensure_ascii=False)) for m in msgs if "tool_calls" in m)
                if tools:
                    chars += len(json.dumps(tools, ensure_ascii=False))
                out.append(([], math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(msgs)))
            elif seq[0] == "plain":
                out.append(([], math.ceil((len(seq[1]) + len(seq[2])) / CHARS_PER_TOKEN)))
            else:
                out.append(([], math.ceil(len(seq[1]) / CHARS_PER_TOKEN)))
        return out

    def lengths(self, plans: list[list[tuple[list[tuple[str, bool]], int]]]) -> list[list[int]]:
        return [[const for _, const in p] for p in plans]


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    path = terminal_safe(os.fspath(path))  # as the error messages show it
    if not p.is_dir():
        raise DataCheckError(f"tokenizer '{path}' is not a local directory; pass a folder saved with "
                             "save_pretrained (tokenizer.json / tokenizer_config.json); nothing is downloaded")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise DataCheckError(f"tokenizer '{path}' holds no tokenizer files ({', '.join(TOKENIZER_FILES)}); pass "
                             "a folder saved with save_pretrained")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises OSError, ValueError, TypeError... here
        first = terminal_safe(first_line(e).rstrip(" :"))
        raise DataCheckError(f"tokenizer '{path}' does not load ({first}); pass a folder saved with "
                             "save_pretrained") from None
    finally:
        hf_logging.set_verbosity(verbosity)


class HFCounter(TokenCounter):
    """Exact counts with a transformers tokenizer, the way TRL builds sequences: chat data rendered with the
    tokenizer's chat template then encoded without extra special tokens; prompt/completion strings encoded
    separately plus EOS; raw text with the tokenizer's special tokens plus EOS."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.has_template = bool(getattr(tok, "chat_template", None))
        self.eos = 1 if getattr(tok, "eos_token_id", None) is not None else 0
        name = getattr(tok, "name_or_path", None) or type(tok).__name__
        self.method = f"tokenizer {name}" + ("" if self.has_template else
                                              " (no chat template: chat message contents only, not exact)")
        self.chat_seen = False

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.has_template or not self.chat_seen

    def plan(self, ex: Example) -> list[tuple[list[tuple[str, bool]], int]]:
        out = []
        for seq in ex.sequences:
            if seq[0] == "chat":
                self.chat_seen = True
                msgs, tools = seq[1], seq[2]
                if self.has_template:
                    kw = {"tools": tools} if tools else {}
                    text = self.tok.apply_chat_template(msgs, tokenize=False, **kw)
                    out.append(([(text, False)], 0))
                else:
                    out.append(([(m.get("content") or "", False) for m in msgs], 0))
            elif seq[0] == "plain":
                out.append(([(seq[1], False), (seq[2], False)], self.eos))
            else:
                out.append(([(seq[1], True)], self.eos))
        return out

    def lengths(self, plans: list[list[tuple[list[tuple[str, bool]], int]]]) -> list[list[int]]:
        texts: dict[bool, list[str]] = {False: [], True: []}
        for p in plans:
            for pieces, _ in p:
                for text, special in pieces:
                    texts[special].append(text)
        encoded = {}
        for special, batch in texts.items():
            ids = self.tok(batch, add_special_tokens=special, verbose=False)["input_ids"] if batch else []
            encoded[special] = iter([len(x) for x in ids])
        return [[const + sum(next(encoded[special]) for _, special in pieces) for pieces, const in p] for p in plans]
