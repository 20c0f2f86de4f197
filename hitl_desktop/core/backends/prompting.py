"""Prompt formatting: the text and token ids a conversation becomes, and where an answer ends.

* :func:`has_chat_template` ``(tokenizer)``; :func:`format_prompt` ``(tokenizer, conversation,
  *, label)``: the tokenizer's chat template (``add_generation_prompt=True``), earlier turns
  and system message included; a template without a system role (Gemma's older ones raise)
  gets the system text at the start of the first user turn; a base model without a template
  gets the plain format (:mod:`.plain`, :data:`PLAIN_FORMAT_DOC`). A template that refuses the
  conversation anyway is a ModelError naming ``label``.
* :func:`encode_prompt`: its token ids (a chat template writes its own BOS; the plain format
  gets one).
* :func:`find_eos_ids` ``(tokenizer, model)``: the ids that end a candidate: the tokenizer's
  EOS, the EOS ids of the model's config and generation config (Llama 3 lists ``<|eot_id|>``
  there), the token the chat template writes after an assistant turn (found by rendering
  one), and the common end-of-turn tokens of :data:`END_OF_TURN_TOKENS` in the vocabulary.

Tokenizer-level only: no torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hitl_desktop.core.backends.base import ModelError, short_error
from hitl_desktop.core.backends.plain import format_plain
from hitl_desktop.core.types import Message

__all__ = [
    "END_OF_TURN_TOKENS",
    "PLAIN_FORMAT_DOC",
    "encode_prompt",
    "find_eos_ids",
    "fold_system",
    "format_prompt",
    "has_chat_template",
    "template_end_of_turn",
]

#: Roles as written in the plain format for base models.
PLAIN_FORMAT_DOC = "System: ...\\n\\nUser: ...\\n\\nAssistant: ...\\n\\nUser: ...\\n\\nAssistant:"

#: End-of-turn tokens of common chat templates; each one present in a vocabulary as a special
#: token ends a row. ("</s>" is not one: Gemma has it as an HTML tag; where it is the EOS,
#: the tokenizer's eos_token says so.)
END_OF_TURN_TOKENS = (
    "<end_of_turn>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|return|>",
)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer: Any, conversation: Sequence[Message], *, label: object) -> str:
    """The text the model is given (see the module doc)."""
    if not has_chat_template(tokenizer):
        return format_plain(conversation)
    messages = [{"role": m.role, "content": m.content} for m in conversation]
    try:
        return _apply_template(tokenizer, messages)
    except Exception as e:  # noqa: BLE001 - a template raises whatever it likes
        folded = fold_system(messages)
        if folded is not None:
            try:
                return _apply_template(tokenizer, folded)
            except Exception:  # noqa: BLE001 - report the first refusal
                pass
        raise ModelError(f"{label}: the chat template refused the conversation ({short_error(e)})") from None


def encode_prompt(tokenizer: Any, conversation: Sequence[Message], *, label: object) -> list[int]:
    """Token ids of the prompt (a chat template writes its own BOS; the plain format gets one)."""
    text = format_prompt(tokenizer, conversation, label=label)
    return list(tokenizer(text, add_special_tokens=not has_chat_template(tokenizer)).input_ids)


def _apply_template(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """The conversation with its system text put at the start of the first user turn (for
    templates without a system role); None when there is no system turn to fold."""
    system = [m["content"].strip() for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return None
    text = "\n\n".join(t for t in system if t)
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{text}\n\n{m['content']}" if text else m["content"]
            return rest
    return [{"role": "user", "content": text}, *rest]


def find_eos_ids(tokenizer: Any, model: Any) -> set[int]:
    """Ids that end a candidate (see the module doc)."""
    ids: set[int] = set()

    def add(v: Any) -> None:
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, (list, tuple, set)):
            for x in v:
                add(x)

    add(tokenizer.eos_token_id)
    add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    add(getattr(model.config, "eos_token_id", None))
    add(template_end_of_turn(tokenizer))
    special = special_ids(tokenizer)
    for token in END_OF_TURN_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid in special and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return ids


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of the special tokens: the tokenizer's named ones and its added tokens."""
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    special |= set(getattr(tokenizer, "added_tokens_decoder", None) or {})
    return special


def template_end_of_turn(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant message
    (``<end_of_turn>``, ``<|eot_id|>``, ``<|im_end|>``, ``</s>``...), found by rendering a
    short conversation; None without a template or when it writes none there."""
    if not has_chat_template(tokenizer):
        return None
    marker = "HITLxMARKERx7"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": marker}],
            tokenize=False,
        )
    except Exception:  # noqa: BLE001 - a template that cannot render this has no answer
        return None
    at = text.rfind(marker) if isinstance(text, str) else -1
    if at < 0:
        return None
    after = tokenizer(text[at + len(marker) :], add_special_tokens=False).input_ids
    special = special_ids(tokenizer)
    for tid in after:
        if tid in special:
            return int(tid)
        if tokenizer.decode([tid]).strip():
            return None  # text before any special token: no end-of-turn token
    return None
