"""Build a tiny random base model and its tokenizer offline, with the trainer's own transformers.

Run with a trainer venv's Python by tests/realrun/test_real_runs.py (it imports nothing from the project):

    python tiny.py OUT_DIR CONFIG_JSON

CONFIG_JSON: the family's tiny architecture (estimators.families.tiny_config) as JSON. The result has the shapes
that break real runs: the tokenizer has NO chat template (a base checkpoint), the embedding has more rows than
the tokenizer has entries (as Qwen2.5's 151936 rows for 151665 tokens), and the family decides tied or untied
embeddings. Every family's chat-template special tokens are in the vocabulary, so each trainer's built-in
templates (Axolotl's chat_template names, LLaMA-Factory's templates) tokenize to single ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sleep", "in", "warm",
         "sun", "answer", "ticket", "refund", "order", "late", "yes", "no"]
#: the special tokens of the families' chat templates (their instruct tokenizers)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>",
            "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<s>", "</s>", "[INST]", "[/INST]"]
#: bos / eos / pad per family, as their base tokenizers set them (a Llama 3 base has no pad token)
TOKENS = {"llama": ("<|begin_of_text|>", "<|end_of_text|>", None), "qwen2": (None, "<|endoftext|>", "<|endoftext|>"),
          "qwen3": (None, "<|endoftext|>", "<|endoftext|>"), "qwen3_moe": (None, "<|endoftext|>", "<|endoftext|>"),
          "mistral": ("<s>", "</s>", None),
          "gemma2": ("<bos>", "<eos>", "<eos>"), "phi3": ("<s>", "<|endoftext|>", "<|endoftext|>")}
#: embedding rows beyond the tokenizer's length
EXTRA_ROWS = 64


def main(out: str, config_json: str) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    cfg = json.loads(config_json)
    model_type = cfg.pop("model_type")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([" ".join(WORDS)] * 10, trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos, eos, pad = TOKENS[model_type]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad)
    assert fast.chat_template is None
    ids = {name: (fast.convert_tokens_to_ids(t) if t else None) for name, t in zip(("bos", "eos", "pad"), TOKENS[model_type])}
    cfg["vocab_size"] = len(fast) + EXTRA_ROWS
    config = AutoConfig.for_model(model_type, **cfg, bos_token_id=ids["bos"], eos_token_id=ids["eos"],
                                  pad_token_id=ids["pad"])
    model = AutoModelForCausalLM.from_config(config)
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    print(json.dumps({"tokenizer_len": len(fast), "rows": model.get_input_embeddings().weight.shape[0],
                      "tied": bool(config.tie_word_embeddings)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
