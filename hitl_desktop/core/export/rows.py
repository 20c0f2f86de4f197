"""Rows: one small writer per format, from judged items to row dicts (pure: no file, no
database). :func:`build_rows` is what the tests check field by field.

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

Pairs and margins come from :func:`hitl_desktop.core.ranking.pairs_for_item` (docs/data-rules.md):
every two candidates with different ranks, the better chosen; ties give no pair;
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
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from hitl_desktop.core import ranking
from hitl_desktop.core.export.columns import check_format
from hitl_desktop.core.judgment_records import judgment_row
from hitl_desktop.core.ranking import (
    PairSpec,
    dense_ranks,
    effective_correction,
    is_disqualified,
    pair_specs,
)
from hitl_desktop.core.ranking import Side as PairSide
from hitl_desktop.core.types import (
    ADJUDICATION_TUTOR_ID,
    Candidate,
    JudgedItem,
    Judgment,
    Message,
)

_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}

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


def _pair_metadata(
    ch: PairSide, rej: PairSide, source: str, j: Judgment, domain: str, tutor: str, adjudicated: bool
) -> dict[str, Any]:
    """The metadata columns of a pair's row (``_META_PAIR`` but ``prompt_id``); ``tutor`` is the
    name as exported (pseudonymised unless asked), also in a correction's ``chosen_model``;
    ``adjudicated``: the judgment is a lead's ruling (``_source``)."""
    return {
        "judgment_id": j.id,
        "domain": domain,
        "tutor": tutor,
        "chosen_model": f"tutor:{tutor}" if source == "correction" else ch[2],
        "rejected_model": rej[2],
        "chosen_seed": ch[3],
        "rejected_seed": rej[3],
        "source": "adjudication" if adjudicated and source == "ranking" else source,
        "created_at": j.created_at,
        "chosen_flags": list(ch[4]),
        "rejected_flags": list(rej[4]),
        "chosen_ratings": dict(ch[5]) or None,
        "rejected_ratings": dict(rej[5]) or None,
        "rationale": j.rationale,
    }


def _source(source: str, item: JudgedItem) -> str:
    """A row's ``source``: ``"adjudication"`` for what a lead's ruling ranked (its tutor is
    the adjudicator), else the pair's or row's own (``"ranking"``, ``"correction"``...)."""
    if source == "ranking" and item.judgment.tutor_id == ADJUDICATION_TUTOR_ID:
        return "adjudication"
    return source


def _trl_judgment(item: JudgedItem, tutor: str) -> tuple[str, str, str, str, str, str | None, str, str]:
    """What every trl-preference row of a judgment shares: (prompt, prompt id, judgment id,
    domain, created at, rationale, the source of its ranked pairs, a correction's model)."""
    j = item.judgment
    ranking = "adjudication" if j.tutor_id == ADJUDICATION_TUTOR_ID else "ranking"
    prompt = render_prompt(item.prompt.messages, item.prompt.text)
    return prompt, item.prompt.id, j.id, item.domain, j.created_at, j.rationale, ranking, f"tutor:{tutor}"


def _trl_preference_rows(item: JudgedItem, pairs: list[PairSpec], tutor: str) -> list[dict[str, Any]]:
    # the export's most used format: ``_pair_metadata`` written inline (a call and a merge
    # less per row; tests/core/test_export_golden.py checks the columns and their order)
    prompt, pid, jid, domain, created_at, rationale, ranking, tutor_model = _trl_judgment(item, tutor)
    return [
        {
            "prompt": prompt,
            "chosen": ch[0],
            "rejected": rej[0],
            "margin": float(value),
            "prompt_id": pid,
            "judgment_id": jid,
            "domain": domain,
            "tutor": tutor,
            "chosen_model": tutor_model if source == "correction" else ch[2],
            "rejected_model": rej[2],
            "chosen_seed": ch[3],
            "rejected_seed": rej[3],
            "source": ranking if source == "ranking" else source,
            "created_at": created_at,
            # a new list and dict per row, as ``_pair_metadata`` makes (most sides have none)
            "chosen_flags": list(ch[4]) if ch[4] else [],
            "rejected_flags": list(rej[4]) if rej[4] else [],
            "chosen_ratings": dict(ch[5]) if ch[5] else None,
            "rejected_ratings": dict(rej[5]) if rej[5] else None,
            "rationale": rationale,
        }
        for ch, rej, value, source in pairs
    ]


def trl_preference_values(item: JudgedItem, pairs: list[PairSpec], tutor: str) -> list[tuple[Any, ...]]:
    """``_trl_preference_rows`` as tuples in the columns' order (``COLUMNS``, the Arrow
    schema's): what a Parquet or Arrow batch is made from without a dict per row (flags as
    the sides' tuples: Arrow reads them as lists). tests/core/test_export_digests.py checks
    the files against those the dicts made."""
    prompt, pid, jid, domain, created_at, rationale, ranking, tutor_model = _trl_judgment(item, tutor)
    return [
        (
            prompt, ch[0], rej[0], float(value), jid, pid, domain, tutor,
            tutor_model if source == "correction" else ch[2], rej[2], ch[3], rej[3],
            ranking if source == "ranking" else source, created_at, ch[4], rej[4],
            dict(ch[5]) if ch[5] else None, dict(rej[5]) if rej[5] else None, rationale,
        )  # fmt: skip
        for ch, rej, value, source in pairs
    ]


#: Formats whose rows can be made as tuples in the columns' order (``build_values``).
VALUES = {"trl-preference": trl_preference_values}


def build_values(
    fmt: str, items: Iterable[JudgedItem], *, tutor_name: Callable[[str], str] = lambda name: name,
    dropped: Counter[str] | None = None,
) -> list[tuple[Any, ...]]:
    """``build_rows`` for a format of ``VALUES``, each row a tuple of its column values in
    the columns' order (``COLUMNS``)."""
    values = VALUES[fmt]
    out: list[tuple[Any, ...]] = []
    for item in items:
        tutor = tutor_name(item.tutor_name)
        pairs = pair_specs(item, dropped)
        if pairs:
            out.extend(values(item, pairs, tutor))
    return out


def _trl_preference_chat_rows(item: JudgedItem, pairs: list[PairSpec], tutor: str) -> Iterator[dict[str, Any]]:
    conv = _conversation(item)
    j, pid, domain = item.judgment, item.prompt.id, item.domain
    adj = j.tutor_id == ADJUDICATION_TUTOR_ID
    for ch, rej, value, source in pairs:
        yield {
            "prompt": conv,
            "chosen": [{"role": "assistant", "content": ch[0]}],
            "rejected": [{"role": "assistant", "content": rej[0]}],
            "margin": float(value),
            "prompt_id": pid,
            **_pair_metadata(ch, rej, source, j, domain, tutor, adj),
        }


def _hh_rlhf_rows(item: JudgedItem, pairs: list[PairSpec], tutor: str) -> Iterator[dict[str, Any]]:
    head = render_transcript(item.prompt.messages, item.prompt.text) + "\n\nAssistant: "
    j, pid, domain = item.judgment, item.prompt.id, item.domain
    adj = j.tutor_id == ADJUDICATION_TUTOR_ID
    for ch, rej, _value, source in pairs:
        yield {
            "chosen": head + ch[0],
            "rejected": head + rej[0],
            "prompt_id": pid,
            **_pair_metadata(ch, rej, source, j, domain, tutor, adj),
        }


def _ultrafeedback_rows(item: JudgedItem, pairs: list[PairSpec], tutor: str) -> Iterator[dict[str, Any]]:
    j = item.judgment
    prompt = render_prompt(item.prompt.messages, item.prompt.text)
    prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    conv = _conversation(item)
    known = {c.id for c in item.candidates}
    dense = dense_ranks({cid: r for cid, r in j.ranks.items() if cid in known})
    levels = len(set(dense.values()))
    corr_id = j.correction.id if j.correction is not None else None
    pid, domain = item.prompt.id, item.domain
    adj = j.tutor_id == ADJUDICATION_TUTOR_ID

    def score(answer_id: str) -> float:
        if answer_id == corr_id or answer_id not in dense:
            return float(levels + 1)
        return float(levels - dense[answer_id] + 1)

    kept = j.source_values.get("scores") or {}  # an imported row's own scores, as they were
    for ch, rej, _value, source in pairs:
        if ch[1] in kept and rej[1] in kept:
            scores = (float(kept[ch[1]]), float(kept[rej[1]]))
        elif ch[5] and rej[5]:
            scores = (_rating_score(ch[5]), _rating_score(rej[5]))
        else:
            scores = (score(ch[1]), score(rej[1]))
        chosen = [*conv, {"role": "assistant", "content": ch[0]}]
        yield {
            "prompt": prompt,
            "prompt_id": prompt_hash,
            "chosen": chosen,
            "rejected": [*conv, {"role": "assistant", "content": rej[0]}],
            "messages": chosen,
            "score_chosen": scores[0],
            "score_rejected": scores[1],
            "hitl_prompt_id": pid,
            **_pair_metadata(ch, rej, source, j, domain, tutor, adj),
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
PAIRED = frozenset(_PAIR_ROWS)


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
    check_format(fmt)
    rows: list[dict[str, Any]] = []
    pair_rows = _PAIR_ROWS.get(fmt)
    for item in items:
        tutor = tutor_name(item.tutor_name)
        if pair_rows is not None:
            pairs = pair_specs(item, dropped)
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


def one_label_each(rows: list[dict[str, Any]], dropped: Counter[str]) -> list[dict[str, Any]]:
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
