"""Tiny random models for tests: real transformers folders (and a GGUF file), built offline.

``build_tiny_model(path)`` trains a byte-level BPE tokenizer on a few sentences, builds a
two-layer causal LM with random weights (fixed torch seed) and saves both with
``save_pretrained``, so ``TransformersBackend.load(path)`` runs exactly the code path a real
model does. It writes nonsense, fast: K=4 x 32 tokens take about 50 ms.

Variants:

* ``chat=False`` (default): a Gemma 3 text model (sliding-window and full attention layers,
  like the embedded model) with no chat template, so the plain "User:/Assistant:" format is used;
* ``chat=True``: a Llama model whose tokenizer has a Gemma-style chat template
  (``<start_of_turn>``/``<end_of_turn>``).

``build_tiny_gguf(path)`` writes the chat variant as an F32 llama GGUF file, for the GGUF
loading and conversion cache tests.
"""

from __future__ import annotations

import json
from pathlib import Path

#: The few sentences the tiny tokenizer learns its merges from.
CORPUS = [
    "User: What is the capital of France?",
    "Assistant: The capital of France is Paris.",
    "The patient was given two doses of the drug after the surgery.",
    "Interest rates rose by a quarter of a point in the second quarter.",
    "def add(a, b):\n    return a + b",
    "A triangle has three sides and the angles add up to 180 degrees.",
    "The court held that the contract was void for lack of consideration.",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u00fcber \u65e5\u672c\u8a9e \U0001f600",
]

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
PAD_ID, EOS_ID, BOS_ID, START_OF_TURN_ID, END_OF_TURN_ID = range(5)

#: A Gemma-style template; it writes <bos> itself.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

VOCAB_SIZE = 384
HIDDEN = 32
SEED = 1234


def build_tiny_tokenizer(*, chat: bool = False):
    """A byte-level BPE ``PreTrainedTokenizerFast`` (any text encodes), trained in-process."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", BOS_ID)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    fast.padding_side = "left"
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def _tiny_config(vocab_size: int, *, chat: bool):
    common = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=HIDDEN // 2,
        max_position_embeddings=1024,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        initializer_range=0.1,  # peakier than the default, so sampling settings matter
    )
    if chat:
        from transformers import LlamaConfig

        return LlamaConfig(rms_norm_eps=1e-6, tie_word_embeddings=False, **common)
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        sliding_window=8,  # tiny, so the sliding-window cache is exercised
        layer_types=["sliding_attention", "full_attention"],
        query_pre_attn_scalar=HIDDEN // 2,
        tie_word_embeddings=True,
        **common,
    )


def build_tiny_model(path: str | Path, *, chat: bool = False) -> Path:
    """Write a tiny random causal LM + tokenizer folder at ``path`` (created); returns it."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(chat=chat)
    config = _tiny_config(len(tokenizer), chat=chat)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.pad_token_id = PAD_ID
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        model.save_pretrained(path)
    finally:
        if bars:
            logging.enable_progress_bar()
    tokenizer.save_pretrained(path)
    return path


def _permute_for_gguf(w, n_head: int):
    """llama.cpp's rotary layout for q/k weights (transformers undoes it when loading)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def build_tiny_gguf(path: str | Path, *, model_dir: str | Path | None = None) -> Path:
    """Write the tiny chat (llama) model as an F32 GGUF file at ``path``; returns it.

    ``model_dir``: an already built ``build_tiny_model(..., chat=True)`` folder to convert
    (built in a temporary folder otherwise).
    """
    import tempfile

    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = (
            Path(model_dir)
            if model_dir is not None
            else build_tiny_model(Path(tmp) / "m", chat=True)
        )
        config = json.loads((src / "config.json").read_text())
        tok_json = json.loads((src / "tokenizer.json").read_text())
        weights = load_file(str(src / "model.safetensors"))

    vocab = tok_json["model"]["vocab"]
    tokens = [None] * config["vocab_size"]
    for token, index in vocab.items():
        tokens[index] = token
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for added in tok_json["added_tokens"]:
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"]["merges"]]

    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(config["head_dim"])
    writer.add_rope_freq_base(float(config.get("rope_theta") or 10000.0))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_pad_token_id(PAD_ID)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    def add(name: str, array) -> None:
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    add("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", weights[p + "input_layernorm.weight"])
        add(
            f"blk.{i}.attn_q.weight",
            _permute_for_gguf(weights[p + "self_attn.q_proj.weight"], n_head),
        )
        add(
            f"blk.{i}.attn_k.weight",
            _permute_for_gguf(weights[p + "self_attn.k_proj.weight"], n_kv),
        )
        add(f"blk.{i}.attn_v.weight", weights[p + "self_attn.v_proj.weight"])
        add(f"blk.{i}.attn_output.weight", weights[p + "self_attn.o_proj.weight"])
        add(f"blk.{i}.ffn_norm.weight", weights[p + "post_attention_layernorm.weight"])
        add(f"blk.{i}.ffn_gate.weight", weights[p + "mlp.gate_proj.weight"])
        add(f"blk.{i}.ffn_up.weight", weights[p + "mlp.up_proj.weight"])
        add(f"blk.{i}.ffn_down.weight", weights[p + "mlp.down_proj.weight"])
    add("output_norm.weight", weights["model.norm.weight"])
    add("output.weight", weights["lm_head.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
