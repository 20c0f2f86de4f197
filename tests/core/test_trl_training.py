"""The exported files train as they are in TRL, with a tiny model built here (nothing from a hub)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("trl")

import datasets  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from hitl_desktop.core.export import export_dataset  # noqa: E402
from hitl_desktop.core.store import Store  # noqa: E402
from hitl_desktop.core.types import Candidate, Correction, Judgment, Message, Prompt  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _store() -> Store:
    store = Store.memory()
    tutor = store.ensure_tutor("Dr. Test")
    texts = [
        ("What is the usual adult dose of paracetamol?", "medicine"),
        ("Ποια είναι η δόση; 日本語 🙂", "medicine"),
        ("Explain compound interest.", "finance"),
        ("Is <b>this</b> contract valid?", "law"),
    ]
    for n, (text, domain) in enumerate(texts):
        msgs = (
            [Message("user", "earlier"), Message("assistant", "earlier answer")] if n == 1 else []
        )
        p = store.add_prompt(Prompt(text=text, domain=domain, messages=msgs))
        cs = [
            Candidate(
                prompt_id=p.id, text=f"Answer {k} to {text[:12]}", model="tiny", seed=k, index=k
            )
            for k in range(3)
        ]
        store.add_candidates(cs)
        correction = (
            Correction(text=f"A corrected answer to {text[:12]}", candidate_id=cs[0].id)
            if n % 2
            else None
        )
        store.save_judgment(
            Judgment(
                prompt_id=p.id,
                tutor_id=tutor.id,
                ranks={c.id: k + 1 for k, c in enumerate(cs)},
                correction=correction,
            )
        )
    return store


def _tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<pad>", "<eos>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _texts(ds: datasets.Dataset) -> list[str]:
    out = []
    for row in ds:
        for key in ("prompt", "chosen", "rejected"):
            v = row[key]
            out.extend([m["content"] for m in v] if isinstance(v, list) else [v])
    return out


def _llama_config(tokenizer, **kw) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **kw,
    )


def _load(path, tmp_path) -> datasets.Dataset:
    return datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache")
    )


@pytest.mark.parametrize("fmt", ["trl-preference", "trl-preference-chat"])
def test_reward_trainer_trains_on_the_export(tmp_path, fmt):
    from trl import RewardConfig, RewardTrainer

    torch.manual_seed(0)
    out = tmp_path / "pairs.jsonl"
    summary = export_dataset(_store(), fmt=fmt, out=out)
    assert summary.rows >= 8
    ds = _load(out, tmp_path)  # as it is: metadata columns included
    tokenizer = _tokenizer(_texts(ds))
    model = LlamaForSequenceClassification(_llama_config(tokenizer, num_labels=1))
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        max_length=256,
        dataloader_num_workers=0,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    result = trainer.train()
    assert trainer.state.global_step == 2
    assert math.isfinite(result.training_loss)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_chat_export_has_dpo_columns_and_trains_one_dpo_step(tmp_path):
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational

    torch.manual_seed(0)
    out = tmp_path / "chat.jsonl"
    export_dataset(_store(), fmt="trl-preference-chat", out=out)
    ds = _load(out, tmp_path)
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    assert is_conversational(ds[0])
    tokenizer = _tokenizer(_texts(ds))
    model = LlamaForCausalLM(_llama_config(tokenizer))
    ref_model = LlamaForCausalLM(_llama_config(tokenizer))  # given, so nothing is fetched
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        max_length=256,
        dataloader_num_workers=0,
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=ds, processing_class=tokenizer
    )
    result = trainer.train()
    assert trainer.state.global_step == 1
    assert math.isfinite(result.training_loss)
