"""Judgments -> training data files: one row builder per format, three kinds of output.

Pure Python (no Qt). The CLI and the GUI call :func:`export_dataset`; :func:`build_rows`
is the pure part (JudgedItems in, row dicts out) and is what the tests check field by field.

Formats (field names are a contract: they are the ones TRL and the known datasets use)
--------------------------------------------------------------------------------------
``trl-preference``       one row per preference pair: ``prompt`` (string), ``chosen``,
                         ``rejected`` (strings), ``margin`` (float). TRL's standard preference
                         type with an explicit prompt (the trainer concatenates prompt + answer).
``trl-preference-chat``  one row per pair: ``prompt`` = list of ``{role, content}`` (earlier
                         turns and the final user turn), ``chosen`` / ``rejected`` =
                         ``[{"role": "assistant", "content": ...}]``, ``margin``.
``hh-rlhf``              one row per pair: ``chosen`` / ``rejected`` are whole transcripts
                         ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` (earlier turns included).
``ultrafeedback``        one row per pair, as UltraFeedback binarized: ``prompt`` (string),
                         ``prompt_id`` (sha256 hex of the prompt string), ``chosen`` /
                         ``rejected`` (message lists: earlier turns, the user turn and the
                         answer), ``messages`` (= chosen), ``score_chosen``, ``score_rejected``.
                         Our own prompt id is in ``hitl_prompt_id`` there.
``nectar``               one row per JUDGMENT (the K-wise ranking itself): ``prompt`` in the
                         ``"\\n\\nHuman: ...\\n\\nAssistant:"`` form, ``answers`` =
                         ``[{answer, model, rank}]`` best first, ``num_responses``, ``turns``,
                         ``all_bad``.
``kto``                  unpaired: ``prompt``, ``completion`` (strings), ``label`` (bool).
``sft``                  ``prompt``, ``completion`` (strings) and ``messages`` (the whole
                         conversation ending with the answer): corrections, and with
                         ``include_top_ranked`` also the top-ranked candidates.

Documented choices
------------------
Prompt string (``trl-preference``, ``ultrafeedback``, ``kto``, ``sft``): a single user turn
is its text exactly. With earlier turns (or a system message) the whole conversation is
rendered, one turn per paragraph with its role as a label, the final user turn last::

    System: <text>\\n\\nUser: <text>\\n\\nAssistant: <text>\\n\\nUser: <final user turn>

Transcripts (``hh-rlhf``, ``nectar``): Anthropic's form. Each user turn is
``"\\n\\nHuman: <text>"``, each assistant turn ``"\\n\\nAssistant: <text>"``; a system message
at the start is put before the first ``Human:`` without a label (where Anthropic's legacy
prompts put it), a later one as ``"\\n\\nSystem: <text>"``. hh-rlhf appends
``"\\n\\nAssistant: <answer>"``, nectar's prompt ends with ``"\\n\\nAssistant:"``.

Pairs and margins come from :func:`hitl_desktop.core.ranking.pairs_for_item` (DESIGN.md
section 4): every two candidates with different ranks, the better chosen; ties give no pair;
all-bad without a correction gives none; a correction is chosen over every candidate;
``margin = (dense_rank(rejected) - dense_rank(chosen)) * strength / 2`` with a correction at
dense rank 0.

UltraFeedback scores: when both answers of a pair have 1-5 ratings, each score is the mean of
its ratings. Otherwise from the ranking: with ``L`` distinct rank levels among the candidates,
``score = L - dense_rank + 1`` (the best level scores ``L``, the worst 1); a correction scores
``L + 1``, so ``score_chosen - score_rejected`` is the dense rank distance.

Nectar ranks: the tutor's ranks made dense (1, 3, 3 -> 1, 2, 2; ties keep equal ranks), so
every rank fits the row's answers. Answers are written best first; answers that share a rank
in the order the tutor saw them (the judgment's display order; for an imported Nectar row,
the row's own order), then in generated order. A correction
is added as an answer with rank 1 and every candidate's rank moves down by one; its model is
``"tutor:<tutor>"`` (a correction identical to a candidate's text is not added again). An all-bad judgment keeps its ranks and has ``all_bad = true``.

KTO labels (also the "top-ranked" answers of ``sft``): desirable (``label = true``) are the
correction and, unless the judgment is all-bad, every candidate at the best rank (ties at the
top are all desirable; when all candidates share one rank they are all desirable), except the
candidate the correction rewrote (the tutor had to fix it), and never a candidate flagged
``incorrect``, ``unsafe`` or ``hallucination``. Everything else is undesirable, so all
candidates of an all-bad judgment are. Identical (prompt, completion) rows within one
judgment are written once, the desirable one first. With ``consensus`` each (prompt,
completion) is written once, and one that would get both labels is dropped (counted).

Consensus (``consensus=True``, core/consensus.py): majority pairs only, margin = vote
difference; the summary counts what each rule left out (``ExportSummary.dropped``).

Metadata columns (same names in every format): ``judgment_id``, ``prompt_id`` (``hitl_prompt_id``
in ultrafeedback), ``domain``, ``tutor``, ``source`` (``"ranking"``, ``"correction"``,
``"consensus"`` or ``"adjudication"``: a lead's ruling, whose ``tutor`` is the adjudicator), ``created_at`` (the judgment's time), and ``chosen_model``,
``rejected_model``, ``chosen_seed``, ``rejected_seed``, ``chosen_flags``, ``rejected_flags``,
``chosen_ratings``, ``rejected_ratings``, ``rationale`` for pairs or ``model``, ``seed`` for
unpaired rows. ``judgments`` (JSONL only): one row per judgment with everything
(core/judgment_records.py). The tutor
is pseudonymised (``Store.pseudonym``) unless ``keep_tutor_names``; a correction's model is
``"tutor:<tutor>"`` with the same (pseudonymised) name.

Output by the suffix of ``out``: ``.jsonl`` (UTF-8, one object a line), ``.parquet``, anything
else a folder written with ``datasets.save_to_disk`` plus a ``README.md`` dataset card. A few
suffixes of file types we do not write (``.json``, ``.csv``...) are refused rather than turned
into a folder. With a test fraction the split is by conversation (a prompt with every turn
continued from it; no conversation in both splits), files
``<stem>-train<suffix>`` / ``<stem>-test<suffix>`` or a ``DatasetDict`` with train and test.
Every file or folder is written to a temporary name in the same folder, synced, then renamed
into place: on any error nothing partial is left and an existing output is untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from hitl_desktop.core import ranking
from hitl_desktop.core.files import fsync_dir, fsync_file, temp_file
from hitl_desktop.core.judgment_records import FIELDS as JUDGMENT_FIELDS
from hitl_desktop.core.judgment_records import judgment_row
from hitl_desktop.core.ranking import (
    dense_ranks,
    effective_correction,
    is_disqualified,
    pairs_for_item,
    split_conversations,
)
from hitl_desktop.core.types import (
    ADJUDICATION_TUTOR_ID,
    CONSENSUS_TUTOR,
    RATING_SCALES,
    Candidate,
    JudgedItem,
    Message,
    PreferencePair,
)
from hitl_desktop.core.wording import counted

FORMATS: tuple[str, ...] = (
    "trl-preference",
    "trl-preference-chat",
    "hh-rlhf",
    "ultrafeedback",
    "nectar",
    "kto",
    "sft",
    "judgments",
)

#: Suffixes of file types we do not write: refused instead of becoming a folder's name.
_REFUSED_SUFFIXES = frozenset(
    {".json", ".csv", ".tsv", ".txt", ".arrow", ".gz", ".zip", ".xz", ".bz2"}
)

#: Files that mark a folder as a previous dataset export (safe to replace).
_DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")

_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


class ExportError(Exception):
    """An export that cannot be done; the message is one line a tutor can act on."""


@dataclass
class ExportSummary:
    format: str
    out: Path
    files: list[Path]
    rows: int
    train_rows: int
    test_rows: int
    judgments: int
    prompts: int
    pairs: int
    domains: list[str] = field(default_factory=list)
    #: rows each rule left out: reason -> count (keys in ``core.ranking``)
    dropped: dict[str, int] = field(default_factory=dict)
    #: with --consensus: how many prompts had two or more tutors (None without it)
    consensus_prompts: int | None = None
    #: one-line remarks for the tutor (e.g. a consensus with nothing to combine)
    notes: list[str] = field(default_factory=list)

    def dropped_text(self) -> str:
        """``"2 unchanged corrections ignored; 1 ..."``, or "" when nothing was dropped."""
        return "; ".join(counted(n, why) for why, n in sorted(self.dropped.items()) if n)


# -- columns: names, types and descriptions (types keep Parquet / datasets consistent) -------

# kinds: str, float, int (nullable), bool, messages (list of {role, content}),
# answers (list of {answer, model, rank})
_META_PAIR = [
    ("judgment_id", "str", "id of the tutor's judgment the row comes from"),
    ("prompt_id", "str", "hitl-desktop prompt id (rows of one prompt are in one split)"),
    ("domain", "str", "specialist domain of the judgment"),
    ("tutor", "str", "the tutor (pseudonymised unless exported with tutor names)"),
    (
        "chosen_model",
        "str",
        'model that wrote the chosen answer ("tutor:<tutor>" for a correction)',
    ),
    ("rejected_model", "str", "model that wrote the rejected answer"),
    ("chosen_seed", "int", "sampling seed of the chosen answer (null for a correction)"),
    ("rejected_seed", "int", "sampling seed of the rejected answer"),
    (
        "source",
        "str",
        '"ranking" (two ranked candidates), "correction" (tutor\'s rewrite chosen), '
        '"consensus" (a majority pair of several tutors) or "adjudication" (a lead\'s ruling; '
        'tutor is the adjudicator)',
    ),
    ("created_at", "str", "time of the judgment, ISO 8601 UTC"),
    ("chosen_flags", "flags", "flags the tutor raised on the chosen answer"),
    ("rejected_flags", "flags", "flags the tutor raised on the rejected answer"),
    ("chosen_ratings", "ratings", "the tutor's 1-5 ratings of the chosen answer (null: not rated)"),
    ("rejected_ratings", "ratings", "the tutor's 1-5 ratings of the rejected answer"),
    ("rationale", "str", "the tutor's rationale for the judgment"),
]
_META_UNPAIRED = [
    ("judgment_id", "str", "id of the tutor's judgment the row comes from"),
    ("prompt_id", "str", "hitl-desktop prompt id (rows of one prompt are in one split)"),
    ("domain", "str", "specialist domain of the judgment"),
    ("tutor", "str", "the tutor (pseudonymised unless exported with tutor names)"),
    ("model", "str", 'model that wrote the completion ("tutor:<tutor>" for a correction)'),
    ("seed", "int", "sampling seed of the completion (null for a correction)"),
    (
        "source",
        "str",
        '"ranking" (a ranked candidate), "correction" (the tutor\'s rewrite) or "adjudication" '
        "(ranked by a lead's ruling; tutor is the adjudicator)",
    ),
    ("created_at", "str", "time of the judgment, ISO 8601 UTC"),
]
_MARGIN = ("margin", "float", "rank distance x strength / 2 (see the margin formula)")

COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "trl-preference": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("chosen", "str", "the better answer"),
        ("rejected", "str", "the worse answer"),
        _MARGIN,
        *_META_PAIR,
    ],
    "trl-preference-chat": [
        ("prompt", "messages", "earlier turns and the final user turn, as {role, content}"),
        ("chosen", "messages", "[{role: assistant, content: the better answer}]"),
        ("rejected", "messages", "[{role: assistant, content: the worse answer}]"),
        _MARGIN,
        *_META_PAIR,
    ],
    "hh-rlhf": [
        ("chosen", "str", "whole transcript ending with the better answer"),
        ("rejected", "str", "whole transcript ending with the worse answer"),
        *_META_PAIR,
    ],
    "ultrafeedback": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("prompt_id", "str", "sha256 hex digest of the prompt string"),
        ("chosen", "messages", "conversation ending with the better answer"),
        ("rejected", "messages", "conversation ending with the worse answer"),
        ("messages", "messages", "the same as chosen"),
        ("score_chosen", "float", "mean rating when both answers are rated, else levels - dense rank + 1"),
        ("score_rejected", "float", "mean rating when both answers are rated, else levels - dense rank + 1"),
        ("hitl_prompt_id", "str", "hitl-desktop prompt id (rows of one prompt are in one split)"),
        *[c for c in _META_PAIR if c[0] != "prompt_id"],
    ],
    "nectar": [
        ("prompt", "str", 'transcript "\\n\\nHuman: ...\\n\\nAssistant:"'),
        ("answers", "answers", "[{answer, model, rank}] best first; ties share a rank"),
        ("num_responses", "int", "number of answers"),
        ("turns", "int", "number of user turns in the conversation"),
        ("all_bad", "bool", "the tutor found no candidate acceptable"),
        *[c for c in _META_UNPAIRED if c[0] not in ("model", "seed")],
    ],
    "kto": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("completion", "str", "an answer"),
        ("label", "bool", "true: desirable (correction or top-ranked); false: undesirable"),
        *_META_UNPAIRED,
    ],
    "sft": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("completion", "str", "a correction (or a top-ranked answer)"),
        ("messages", "messages", "the whole conversation ending with the completion"),
        *_META_UNPAIRED,
    ],
    # JSONL only: nested provenance (core/judgment_records.py lists every field)
    "judgments": [(name, "json", "see core/judgment_records.py") for name in JUDGMENT_FIELDS],
}


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def arrow_schema(fmt: str):
    """The pyarrow schema of a format's rows (the same for Parquet and the datasets folder)."""
    import pyarrow as pa

    _check_format(fmt)
    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    answers = pa.list_(
        pa.struct([("answer", pa.string()), ("model", pa.string()), ("rank", pa.int64())])
    )
    kinds = {
        "flags": pa.list_(pa.string()),
        "ratings": pa.struct([(scale, pa.int64()) for scale in RATING_SCALES]),
        "str": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "messages": messages,
        "answers": answers,
    }
    return pa.schema([(name, kinds[kind]) for name, kind, _ in COLUMNS[fmt]])


# -- rendering -------------------------------------------------------------------------------


def render_prompt(messages: Sequence[Message], text: str) -> str:
    """The prompt string: the text alone, or the labelled conversation (module docstring)."""
    if not messages:
        return text
    parts = [f"{_ROLE_LABELS.get(m.role, m.role.capitalize())}: {m.content}" for m in messages]
    parts.append(f"User: {text}")
    return "\n\n".join(parts)


def render_transcript(messages: Sequence[Message], text: str) -> str:
    """Anthropic-style transcript up to and including ``"\\n\\nHuman: <text>"``."""
    parts: list[str] = []
    for i, m in enumerate(messages):
        if m.role == "user":
            parts.append(f"\n\nHuman: {m.content}")
        elif m.role == "assistant":
            parts.append(f"\n\nAssistant: {m.content}")
        elif m.role == "system" and i == 0:
            parts.append(m.content)
        else:
            parts.append(f"\n\n{_ROLE_LABELS.get(m.role, m.role.capitalize())}: {m.content}")
    parts.append(f"\n\nHuman: {text}")
    return "".join(parts)


def _conversation(item: JudgedItem) -> list[dict[str, str]]:
    out = [{"role": m.role, "content": m.content} for m in item.prompt.messages]
    out.append({"role": "user", "content": item.prompt.text})
    return out


# -- row builders ----------------------------------------------------------------------------


def _desirable(item: JudgedItem, dropped: Counter[str] | None) -> list[tuple[Candidate, bool]]:
    """Candidates in rank order with their KTO label (see the module docstring)."""
    j = item.judgment
    if item.correction_only:
        return []
    cands = [c for c in item.candidates if c.id in j.ranks]
    cands.sort(key=lambda c: (j.ranks[c.id], c.index))
    if not cands:
        return []
    best = j.ranks[cands[0].id]
    corr = effective_correction(item)
    corrected = corr.candidate_id if corr is not None else None
    out = []
    for c in cands:
        top = (not j.all_bad) and j.ranks[c.id] == best and c.id != corrected
        if top and is_disqualified(item, c.id):
            top = False
            if dropped is not None:
                dropped[ranking.FLAGGED_TOP] += 1
        out.append((c, top))
    return out


def _pair_metadata(p: PreferencePair, item: JudgedItem, tutor: str) -> dict[str, Any]:
    """The metadata columns of a pair's row (``_META_PAIR`` but ``prompt_id``); ``tutor`` is the
    name as exported (pseudonymised unless asked), also in a correction's ``chosen_model``."""
    return {
        "judgment_id": p.judgment_id,
        "domain": item.domain,
        "tutor": tutor,
        "chosen_model": f"tutor:{tutor}" if p.source == "correction" else p.chosen_model,
        "rejected_model": p.rejected_model,
        "chosen_seed": p.chosen_seed,
        "rejected_seed": p.rejected_seed,
        "source": _source(p.source, item),
        "created_at": p.created_at,
        "chosen_flags": list(p.chosen_flags),
        "rejected_flags": list(p.rejected_flags),
        "chosen_ratings": dict(p.chosen_ratings) or None,
        "rejected_ratings": dict(p.rejected_ratings) or None,
        "rationale": p.rationale,
    }


def _source(source: str, item: JudgedItem) -> str:
    """A row's ``source``: ``"adjudication"`` for what a lead's ruling ranked (its tutor is
    the adjudicator), else the pair's or row's own (``"ranking"``, ``"correction"``...)."""
    if source == "ranking" and item.judgment.tutor_id == ADJUDICATION_TUTOR_ID:
        return "adjudication"
    return source


def _trl_preference_rows(
    item: JudgedItem, pairs: list[PreferencePair], tutor: str
) -> Iterator[dict[str, Any]]:
    prompt = render_prompt(item.prompt.messages, item.prompt.text)
    for p in pairs:
        yield {
            "prompt": prompt,
            "chosen": p.chosen,
            "rejected": p.rejected,
            "margin": float(p.margin),
            "prompt_id": p.prompt_id,
            **_pair_metadata(p, item, tutor),
        }


def _trl_preference_chat_rows(
    item: JudgedItem, pairs: list[PreferencePair], tutor: str
) -> Iterator[dict[str, Any]]:
    conv = _conversation(item)
    for p in pairs:
        yield {
            "prompt": conv,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
            "margin": float(p.margin),
            "prompt_id": p.prompt_id,
            **_pair_metadata(p, item, tutor),
        }


def _hh_rlhf_rows(
    item: JudgedItem, pairs: list[PreferencePair], tutor: str
) -> Iterator[dict[str, Any]]:
    head = render_transcript(item.prompt.messages, item.prompt.text) + "\n\nAssistant: "
    for p in pairs:
        yield {
            "chosen": head + p.chosen,
            "rejected": head + p.rejected,
            "prompt_id": p.prompt_id,
            **_pair_metadata(p, item, tutor),
        }


def _ultrafeedback_rows(
    item: JudgedItem, pairs: list[PreferencePair], tutor: str
) -> Iterator[dict[str, Any]]:
    j = item.judgment
    prompt = render_prompt(item.prompt.messages, item.prompt.text)
    prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    conv = _conversation(item)
    known = {c.id for c in item.candidates}
    dense = dense_ranks({cid: r for cid, r in j.ranks.items() if cid in known})
    levels = len(set(dense.values()))
    corr_id = j.correction.id if j.correction is not None else None

    def score(answer_id: str) -> float:
        if answer_id == corr_id or answer_id not in dense:
            return float(levels + 1)
        return float(levels - dense[answer_id] + 1)

    kept = j.source_values.get("scores") or {}  # an imported row's own scores, as they were
    for p in pairs:
        if p.chosen_id in kept and p.rejected_id in kept:
            scores = (float(kept[p.chosen_id]), float(kept[p.rejected_id]))
        elif p.chosen_ratings and p.rejected_ratings:
            scores = (_rating_score(p.chosen_ratings), _rating_score(p.rejected_ratings))
        else:
            scores = (score(p.chosen_id), score(p.rejected_id))
        chosen = [*conv, {"role": "assistant", "content": p.chosen}]
        yield {
            "prompt": prompt,
            "prompt_id": prompt_hash,
            "chosen": chosen,
            "rejected": [*conv, {"role": "assistant", "content": p.rejected}],
            "messages": chosen,
            "score_chosen": scores[0],
            "score_rejected": scores[1],
            "hitl_prompt_id": p.prompt_id,
            **_pair_metadata(p, item, tutor),
        }


def _rating_score(ratings: tuple[tuple[str, int], ...]) -> float:
    """An UltraFeedback score from a tutor's 1-5 ratings: their mean over the scales given."""
    return sum(v for _, v in ratings) / len(ratings)


_PAIR_ROWS = {
    "trl-preference": _trl_preference_rows,
    "trl-preference-chat": _trl_preference_chat_rows,
    "hh-rlhf": _hh_rlhf_rows,
    "ultrafeedback": _ultrafeedback_rows,
}
_PAIRED = frozenset(_PAIR_ROWS)


def _nectar_rows(item: JudgedItem, tutor: str) -> Iterator[dict[str, Any]]:
    j = item.judgment
    msgs = item.prompt.messages
    cands = [c for c in item.candidates if c.id in j.ranks]
    shown = {cid: i for i, cid in enumerate(j.display_order)}  # ties: as the tutor saw them
    cands.sort(key=lambda c: (j.ranks[c.id], shown.get(c.id, len(shown)), c.index))
    corr = effective_correction(item)
    with_corr = corr is not None and all(c.text != corr.text for c in cands)
    if item.correction_only and not with_corr:
        return
    shift = 1 if with_corr else 0
    answers = [{"answer": corr.text, "model": f"tutor:{tutor}", "rank": 1}] if with_corr else []
    dense = dense_ranks({c.id: j.ranks[c.id] for c in cands})
    answers.extend(
        # a consensus member's correction alone: better than each candidate, nothing more
        {"answer": c.text, "model": c.model, "rank": 2 if item.correction_only else dense[c.id] + shift}
        for c in cands
    )
    if not answers:
        return
    yield {
        "prompt": render_transcript(msgs, item.prompt.text) + "\n\nAssistant:",
        "answers": answers,
        "num_responses": len(answers),
        "turns": 1 + sum(1 for m in msgs if m.role == "user"),
        "all_bad": bool(j.all_bad),
        "judgment_id": j.id,
        "prompt_id": item.prompt.id,
        "domain": item.domain,
        "tutor": tutor,
        "source": "correction" if with_corr else _source("ranking", item),
        "created_at": j.created_at,
    }


def _completion_rows(
    fmt: str, item: JudgedItem, tutor: str, include_top_ranked: bool, dropped: Counter[str] | None
) -> Iterator[dict[str, Any]]:
    """kto (every answer, labelled) and sft (the correction, and top answers when asked)."""
    j = item.judgment
    labelled: list[tuple[str, str, int | None, str, bool]] = []  # text, model, seed, source, good
    corr = effective_correction(item)
    if corr is not None:
        labelled.append((corr.text, f"tutor:{tutor}", None, "correction", True))
    if fmt == "kto" or include_top_ranked:
        for c, good in _desirable(item, dropped):
            if fmt == "sft" and not good:
                continue
            labelled.append((c.text, c.model, c.seed, "ranking", good))
    if not labelled:
        return
    prompt = render_prompt(item.prompt.messages, item.prompt.text)
    conv = _conversation(item) if fmt == "sft" else None
    seen: set[str] = set()
    for completion, model, seed, source, good in labelled:
        if completion in seen:
            continue
        seen.add(completion)
        row: dict[str, Any] = {"prompt": prompt, "completion": completion}
        if fmt == "kto":
            row["label"] = good
        else:
            row["messages"] = [*conv, {"role": "assistant", "content": completion}]
        row.update(
            judgment_id=j.id,
            prompt_id=item.prompt.id,
            domain=item.domain,
            tutor=tutor,
            model=model,
            seed=seed,
            source=_source(source, item),
            created_at=j.created_at,
        )
        yield row


def build_rows(
    fmt: str,
    items: Iterable[JudgedItem],
    *,
    tutor_name: Callable[[str], str] = lambda name: name,
    include_top_ranked: bool = False,
    dropped: Counter[str] | None = None,
    sessions: dict[str, dict[str, Any]] | None = None,
    origins: Mapping[str, tuple[str, str | None]] | None = None,
    is_pseudonym: Callable[[str], bool] = lambda name: False,
) -> list[dict[str, Any]]:
    """The rows of one format for these judged items (pure: no file, no database).

    ``dropped`` (optional) counts what the rules left out (keys in ``core.ranking``).
    ``judgments`` only: ``sessions`` by id, candidate ``origins`` (id -> (origin, set id)),
    ``is_pseudonym(exported tutor name)``."""
    _check_format(fmt)
    rows: list[dict[str, Any]] = []
    pair_rows = _PAIR_ROWS.get(fmt)
    for item in items:
        tutor = tutor_name(item.tutor_name)
        if pair_rows is not None:
            pairs = pairs_for_item(item, dropped)
            if pairs:
                rows.extend(pair_rows(item, pairs, tutor))
        elif fmt == "nectar":
            rows.extend(_nectar_rows(item, tutor))
        elif fmt == "judgments":
            sid = item.judgment.session_id
            session = (sessions or {}).get(sid) if sid else None
            rows.append(judgment_row(item, tutor, session, origins=origins, pseudonymised=is_pseudonym(tutor)))
        else:
            rows.extend(_completion_rows(fmt, item, tutor, include_top_ranked, dropped))
    return rows


# -- writing ---------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    # Each row is encoded to UTF-8 on its own and written in chunks: joining everything into
    # one str first costs more (non-ASCII text makes Python strings up to 4 bytes a character).
    # A lone surrogate (not encodable) becomes the JSON escape \udxxx it stands for.
    with open(path, "wb") as f:
        step = 2_000
        for start in range(0, len(rows), step):
            lines = [
                encode(r).encode("utf-8", "backslashreplace") for r in rows[start : start + step]
            ]
            f.write(b"\n".join(lines) + b"\n")
        f.flush()
        os.fsync(f.fileno())


def _table(fmt: str, rows: list[dict[str, Any]]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=arrow_schema(fmt))


def _write_parquet(path: Path, fmt: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_table(fmt, rows), path)
    fsync_file(path)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(dirpath, name))
        fsync_dir(dirpath)


def _size_category(n: int) -> str:
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T" if n >= 1_000_000_000_000 else "1B<n<10B"


_TASKS = {
    "trl-preference": ["text-classification", "reinforcement-learning"],
    "trl-preference-chat": ["text-classification", "reinforcement-learning"],
    "hh-rlhf": ["text-classification", "reinforcement-learning"],
    "ultrafeedback": ["text-classification", "reinforcement-learning"],
    "nectar": ["text-classification", "reinforcement-learning"],
    "kto": ["text-generation", "reinforcement-learning"],
    "sft": ["text-generation"],
    "judgments": ["text-classification", "reinforcement-learning"],
}

_FORMAT_USE = {
    "trl-preference": "preference pairs (standard, explicit prompt) for TRL's RewardTrainer / DPOTrainer",
    "trl-preference-chat": "preference pairs (conversational) for TRL's RewardTrainer / DPOTrainer",
    "hh-rlhf": "preference pairs as whole transcripts, the Anthropic/hh-rlhf layout",
    "ultrafeedback": "preference pairs with scores, the UltraFeedback binarized layout",
    "nectar": "K-wise rankings (one row per judgment), the Nectar layout",
    "kto": "unpaired preference (desirable / undesirable) for TRL's KTOTrainer",
    "sft": "prompt-completion pairs from tutors' corrections for supervised fine-tuning",
    "judgments": "every judgment with everything it holds, in the import record layout",
}


def _yaml_list(values: Iterable[str]) -> str:
    # JSON strings are valid YAML double-quoted scalars.
    return "".join(f"\n  - {json.dumps(v)}" for v in values) or " []"


def dataset_card(summary: ExportSummary, *, filters: dict[str, Any], pseudonymised: bool) -> str:
    """The README.md of a datasets folder: YAML header, then what the data is and how it was made."""
    fmt = summary.format
    cols = "\n".join(f"| `{name}` | {kind} | {desc} |" for name, kind, desc in COLUMNS[fmt])
    splits = (
        f"train: {summary.train_rows} rows, test: {summary.test_rows} rows (split by prompt)"
        if summary.test_rows or filters.get("test_fraction")
        else f"train: {summary.rows} rows (no test split)"
    )
    used = (
        ", ".join(f"{k}={v}" for k, v in filters.items() if v not in (None, 0, 0.0, "")) or "none"
    )
    return f"""---
license: other
license_name: hitl-desktop-export
task_categories:{_yaml_list(_TASKS[fmt])}
tags:
  - rlhf
  - human-feedback
  - preference
  - hitl-desktop
annotations_creators:
  - expert-generated
language_creators:
  - machine-generated
  - expert-generated
size_categories:
  - {json.dumps(_size_category(summary.rows))}
pretty_name: {json.dumps(f"hitl-desktop {fmt} export")}
format: {json.dumps(fmt)}
domains:{_yaml_list(summary.domains)}
---

# hitl-desktop export ({fmt})

{_FORMAT_USE[fmt]}. Specialist tutors ranked, flagged and corrected the answers of local
models in hitl-desktop; this dataset holds their judgments.

- format: `{fmt}`
- rows: {summary.rows} ({splits})
- judgments: {summary.judgments}, prompts: {summary.prompts}, preference pairs: {summary.pairs}
- domains: {", ".join(summary.domains) or "none"}
- filters: {used}
- tutors: {"pseudonymised (stable per database)" if pseudonymised else "real names (exported with --keep-tutor-names)"}
- exported: {datetime.now(timezone.utc).isoformat(timespec="seconds")}

Load with `datasets.load_from_disk(path)`.

## License

No license is set by the export (`license: other`): choose one before sharing. The answers
were generated by models whose license terms may restrict how their outputs are used; check
the terms of every model named in the `*model*` columns. Tutors' corrections and rankings
belong to whoever commissioned the work.

## How the rows were made

- A ranking gives each candidate a rank, 1 = best; equal ranks are ties.
- Every two candidates with different ranks make one pair: the better is `chosen`, the worse
  `rejected` (K candidates without ties give K(K-1)/2 pairs). Ties make no pair.
- "All bad" with no correction makes no pair among the candidates (and none at all).
- A tutor's correction is `chosen` against the candidate it rewrote and every other candidate.
- A pair whose two texts are identical is dropped.
- Margin: ranks are made dense (1, 3, 3, 7 -> 1, 2, 2, 3), a correction stands at dense rank 0;
  `margin = (dense_rank(rejected) - dense_rank(chosen)) * strength / 2`, where strength is the
  tutor's stated strength of preference (1 slightly, 2 clearly, 3 much better).
- No degenerate rows: a correction equal to the candidate it corrects is no correction; no
  pair has chosen == rejected; one judgment never yields the same pair twice.
- Consensus exports: a pair is exported iff more of the tutors who ranked both candidates put
  it that way than the other; margin = the vote difference.
- UltraFeedback scores: the mean of each answer's 1-5 ratings when both are rated, else
  `levels - dense_rank + 1` (a correction `levels + 1`).
- KTO / SFT: desirable = the correction and the best-ranked candidates (not when all bad, not
  the candidate the correction rewrote, never one flagged incorrect, unsafe or
  hallucination); undesirable = the rest.
- Prompt strings: a single user turn as is; with earlier turns, `Role: text` paragraphs
  ending with `User: <final turn>`. Transcripts use `\\n\\nHuman:` / `\\n\\nAssistant:`.
- The train/test split groups rows by conversation (a prompt with every turn continued from
  it): no conversation is in both splits.

## Columns

| column | type | meaning |
| --- | --- | --- |
{cols}
"""


def _write_folder(
    path: Path, fmt: str, splits: dict[str, list[dict[str, Any]]], card: str, split: bool
) -> None:
    from datasets import Dataset, DatasetDict, DatasetInfo, Features
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    schema = arrow_schema(fmt)
    features = Features.from_arrow_schema(schema)
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        # An empty dataset is saved with one (empty) shard: with none, load_from_disk fails.
        if split:
            dd = DatasetDict(
                {
                    name: Dataset(_table(fmt, rows), info=DatasetInfo(features=features))
                    for name, rows in splits.items()
                }
            )
            shards = {name: 1 for name, rows in splits.items() if not rows}
            if shards:
                # num_shards for a DatasetDict must name every split; None lets datasets choose
                dd.save_to_disk(str(path), num_shards={name: shards.get(name) for name in dd})
            else:
                dd.save_to_disk(str(path))
        else:
            ds = Dataset(_table(fmt, splits["train"]), info=DatasetInfo(features=features))
            ds.save_to_disk(str(path), num_shards=None if len(ds) else 1)
    finally:
        if not was_disabled:
            enable_progress_bars()
    (path / "README.md").write_text(card, encoding="utf-8")
    _fsync_tree(path)


def _as_time(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _output_kind(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if suffix in _REFUSED_SUFFIXES:
        raise ExportError(
            f"{out}: cannot write {suffix} files; use a .jsonl or .parquet file or a folder path"
        )
    return "folder"


def _oserror(path: Path, e: OSError) -> ExportError:
    reason = e.strerror or str(e)
    return ExportError(f"{path}: cannot write ({reason})")


def export_dataset(
    store,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    domain: str | None = None,
    tutor: str | None = None,
    since: Any = None,
    until: Any = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    keep_tutor_names: bool = False,
    include_top_ranked: bool = False,
    items: Iterable[JudgedItem] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    consensus: bool = False,
    assembled: Mapping[str, int] | None = None,
    consensus_prompts: int | None = None,
) -> ExportSummary:
    """Write the judgments (filtered) in one format to ``out``; see the module docstring.

    ``items``: pre-selected judged items to export instead of the store's (the filters still
    apply to them). ``consensus``: one consensus per prompt several tutors judged
    (``core.consensus``), applied after the filters. ``on_progress(done, total)``: ``total`` is the number of judgments plus one
    for writing the files; ``done == total`` once everything is in place. ``assembled``: what
    assembling ``items`` already left out (e.g. ``review.export_items``), added to the summary;
    ``consensus_prompts``: how many prompts of a consensus assembled so had two or more tutors.
    """
    _check_format(fmt)
    out_path = Path(out).expanduser()
    kind = _output_kind(out_path)
    if fmt == "judgments" and kind != "jsonl":
        raise ExportError(f"{out_path}: the judgments format is written as a .jsonl file")
    if fmt == "judgments" and consensus:
        raise ExportError("the judgments format holds each tutor's own judgments; drop --consensus")
    try:
        test_fraction = float(test_fraction)
    except (TypeError, ValueError) as e:
        raise ExportError(f"test fraction must be a number in [0, 1), not {test_fraction!r}") from e
    if not 0.0 <= test_fraction < 1.0:
        raise ExportError(f"test fraction must be in [0, 1), not {test_fraction}")
    since_s, until_s = _as_time(since), _as_time(until)

    if items is None:
        if store is None:
            raise ExportError("nothing to export: no store and no items")
        selected = list(
            store.judged_items(domain=domain, tutor=tutor, since=since_s, until=until_s)
        )
    else:
        selected = [
            it
            for it in items
            if (not domain or it.domain == domain)
            and (not tutor or it.tutor_name == tutor)
            and (not since_s or it.judgment.created_at >= since_s)
            and (not until_s or it.judgment.created_at < until_s)
        ]

    dropped: Counter[str] = Counter(assembled or {})
    if consensus:
        from hitl_desktop.core.consensus import consensus_items, several_tutor_prompts

        consensus_prompts = several_tutor_prompts(selected)
        selected = consensus_items(selected, dropped)

    if keep_tutor_names:

        def tutor_name(name: str) -> str:
            return name
    else:
        if store is None:
            raise ExportError("pseudonymising tutors needs the store (or keep_tutor_names=True)")
        cache: dict[str, str] = {}

        def tutor_name(name: str) -> str:
            if name == CONSENSUS_TUTOR:  # not a person: nothing to hide
                return name
            p = cache.get(name)
            if p is None:
                p = cache[name] = store.pseudonym(name)
            return p

    sessions = origins = None
    already: set[str] = set()  # names imported as pseudonyms: written as they are
    if fmt == "judgments" and store is not None:
        sessions = store.sessions_by_id({it.judgment.session_id for it in selected if it.judgment.session_id})
        origins = store.origins_by_candidate({c.id for it in selected for c in it.candidates})
        already = store.pseudonymised_tutors()

    def is_pseudonym(name: str) -> bool:
        return not keep_tutor_names or name in already
    n = len(selected)
    total = n + 1
    test_ids = split_conversations(selected, test_fraction=test_fraction, seed=seed)
    split = test_fraction > 0

    train_rows: list[dict[str, Any]] = []
    test_rows: list[dict[str, Any]] = []
    pairs = 0
    every = max(1, n // 100)
    is_paired = fmt in _PAIRED
    for i, it in enumerate(selected, start=1):
        rows = build_rows(
            fmt, (it,), tutor_name=tutor_name, include_top_ranked=include_top_ranked, dropped=dropped,
            sessions=sessions, origins=origins, is_pseudonym=is_pseudonym,
        )
        if is_paired:
            pairs += len(rows)
        else:
            pairs += len(pairs_for_item(it))
            if it.judgment.correction is not None and effective_correction(it) is None:
                dropped[ranking.UNCHANGED_CORRECTION] += 1
        (test_rows if it.prompt.id in test_ids else train_rows).extend(rows)
        if on_progress is not None and (i % every == 0 or i == n):
            on_progress(i, total)

    if consensus and fmt in ("kto", "sft"):
        train_rows = _one_label_each(train_rows, dropped)
        test_rows = _one_label_each(test_rows, dropped)
    domains = sorted({it.domain for it in selected})
    summary = ExportSummary(
        format=fmt,
        out=out_path,
        files=[],
        rows=len(train_rows) + len(test_rows),
        train_rows=len(train_rows),
        test_rows=len(test_rows),
        judgments=n,
        prompts=len({it.prompt.id for it in selected}),
        pairs=pairs,
        domains=domains,
        dropped={why: n for why, n in dropped.items() if n},
        consensus_prompts=consensus_prompts,
    )
    if consensus_prompts == 0:
        summary.notes.append(
            "no prompt was judged by two or more tutors: the consensus is each tutor's own judgment"
        )

    parent = out_path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _oserror(out_path, e) from e
    if not parent.is_dir():
        raise ExportError(f"{out_path}: cannot write (parent {parent} is not a folder)")

    try:
        if kind == "folder":
            summary.files = [out_path]
            card = dataset_card(
                summary,
                filters={
                    "domain": domain,
                    "tutor": tutor if keep_tutor_names or not tutor else tutor_name(tutor),
                    "since": since_s,
                    "until": until_s,
                    "test_fraction": test_fraction,
                    "seed": seed if split else None,
                },
                pseudonymised=not keep_tutor_names,
            )
            _replace_folder(
                out_path,
                lambda tmp: _write_folder(
                    tmp, fmt, {"train": train_rows, "test": test_rows}, card, split
                ),
            )
        else:
            if split:
                targets = [
                    (out_path.with_name(f"{out_path.stem}-train{out_path.suffix}"), train_rows),
                    (out_path.with_name(f"{out_path.stem}-test{out_path.suffix}"), test_rows),
                ]
            else:
                targets = [(out_path, train_rows)]
            _replace_files(targets, kind, fmt)
            summary.files = [t for t, _ in targets]
    except ExportError:
        raise
    except OSError as e:
        raise _oserror(out_path, e) from e
    except Exception as e:  # pyarrow / datasets errors: one line, naming the output
        first = (str(e).splitlines() or [""])[0]
        raise ExportError(f"{out_path}: export failed ({type(e).__name__}: {first})") from e

    if on_progress is not None:
        on_progress(total, total)
    return summary


def _one_label_each(rows: list[dict[str, Any]], dropped: Counter[str]) -> list[dict[str, Any]]:
    """Under consensus, each (prompt, completion) once: rows that repeat one are merged, and a
    completion given both KTO labels (a member's correction equal to a candidate the consensus
    found undesirable) is dropped, counted."""
    labels: dict[tuple[str, str], set[bool]] = {}
    for r in rows:
        labels.setdefault((r["prompt"], r["completion"]), set()).add(r.get("label", True))
    out, seen = [], set()
    for r in rows:
        key = (r["prompt"], r["completion"])
        if len(labels[key]) > 1:
            dropped[ranking.KTO_CONFLICT] += 1
        elif key not in seen:
            out.append(r)
        seen.add(key)
    return out


def _replace_files(targets: list[tuple[Path, list[dict[str, Any]]]], kind: str, fmt: str) -> None:
    """Write each file to a temporary sibling, then rename them all into place."""
    for target, _ in targets:
        if target.is_dir():
            raise ExportError(f"{target}: is a folder; give a file path ending in .{kind}")
    temps: list[Path] = []
    try:
        for target, rows in targets:
            try:
                tmp = temp_file(target.parent, prefix=f".{target.name}.", suffix=".tmp")
            except OSError as e:
                raise _oserror(target, e) from e
            temps.append(tmp)
            if kind == "jsonl":
                _write_jsonl(tmp, rows)
            else:
                _write_parquet(tmp, fmt, rows)
        for (target, _), tmp in zip(targets, temps, strict=True):
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise _oserror(target, e) from e
        fsync_dir(targets[0][0].parent)
    except BaseException:
        for tmp in temps:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                pass
        raise


def _replace_folder(out: Path, write: Callable[[Path], None]) -> None:
    """Build the folder under a temporary name, then swap it in for ``out``."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ExportError(f"{out}: is a file; give a folder path, or a .jsonl or .parquet file")
        entries = {p.name for p in out.iterdir()}
        if entries and not entries & set(_DATASET_MARKERS):
            raise ExportError(
                f"{out}: is a folder that is not a dataset export; refusing to replace it"
            )
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise _oserror(out, e) from e
    old: Path | None = None
    try:
        write(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            if old is not None:
                os.rename(old, out)
                old = None
            raise
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
