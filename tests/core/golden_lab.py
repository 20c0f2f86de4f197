"""A varied lab database for golden export comparisons (tests/core/test_export_golden.py and
benchmarks): ties, all-bad (ranked and not), strengths, flags, ratings, corrections (fresh,
of a candidate, unchanged), repeated candidate texts, conversations, non-ASCII text, imported
margins and scores, one to three tutors a prompt, and adjudications. Deterministic for a seed
(ids included), so two builds give the same rows."""

from __future__ import annotations

import random

from hitl_desktop.core.store import Store
from hitl_desktop.core.types import (
    Adjudication,
    Candidate,
    Correction,
    Judgment,
    Message,
    Prompt,
    Tutor,
)

TEXTS = ("the mechanism is ...", "café au lait — ½ dose", "日本語の答え", "emoji 🙂 and \"quotes\"\n\tnewline")


def build_golden(path, n_prompts: int = 300, seed: int = 7) -> Store:
    rnd = random.Random(seed)
    ids = iter(range(10**9))

    def nid(kind: str) -> str:
        return f"{kind}{next(ids):07d}"

    store = Store.open(path)
    tutors = [Tutor(name=name, id=nid("t")) for name in ("ann", "bob", "cléo")]
    prompts, cands, judgments = [], [], []
    stamp = 0

    def when() -> str:
        nonlocal stamp
        stamp += 1
        return f"2026-01-{1 + stamp % 28:02d}T{stamp % 24:02d}:{stamp % 60:02d}:00.{stamp:06d}+00:00"

    for i in range(n_prompts):
        msgs = []
        if i % 4 == 1:
            msgs = [Message("system", "Be brief."), Message("user", f"Earlier {i % 7}"), Message("assistant", "Ok.")]
        elif i % 4 == 2:
            msgs = [Message("user", f"First turn {i % 11} {TEXTS[i % 4]}"), Message("assistant", "Sure.")]
        p = Prompt(text=f"Question {i}: {TEXTS[i % 4]}?", domain=("medicine", "law", "stem")[i % 3],
                   messages=msgs, id=nid("p"), created_at=when())  # fmt: skip
        k = rnd.choice((2, 3, 4, 4, 5))
        cs = []
        for j in range(k):
            text = f"Answer {j} to {i}: {TEXTS[(i + j) % 4]} " * rnd.randint(1, 4)
            if j == k - 1 and i % 9 == 0:
                text = cs[0].text  # a repeated candidate text
            cs.append(Candidate(prompt_id=p.id, text=text, index=j, seed=None if j == 2 else j,
                                model=f"m{j % 2}", id=nid("c"), created_at=when()))  # fmt: skip
        prompts.append(p)
        cands.extend(cs)
        for t in rnd.sample(tutors, rnd.choice((1, 2, 2, 3))):
            kind = rnd.random()
            ranks = {c.id: rnd.randint(1, k) for c in cs}
            all_bad = kind < 0.08
            if kind < 0.04:
                ranks = {c.id: 1 for c in cs}  # all bad, not ranked
            flags = {c.id: rnd.sample(["incorrect", "unsafe", "verbose", "hallucination"], rnd.randint(1, 2))
                     for c in cs if rnd.random() < 0.3}  # fmt: skip
            ratings = {c.id: {"helpfulness": rnd.randint(1, 5), "honesty": rnd.randint(1, 5)}
                       for c in cs if rnd.random() < 0.25}  # fmt: skip
            corr = None
            r = rnd.random()
            if r < 0.2:
                corr = Correction(text=f"Better {i} ✓", candidate_id=cs[0].id, id=nid("x"), created_at=when())
            elif r < 0.27:
                corr = Correction(text=f"  {cs[1].text}  ", candidate_id=cs[1].id, id=nid("x"), created_at=when())
            elif r < 0.32:
                corr = Correction(text=f"From scratch {i}", candidate_id=None, id=nid("x"), created_at=when())
            elif r < 0.35:
                corr = Correction(text=cs[-1].text, candidate_id=cs[0].id, id=nid("x"), created_at=when())
            source_values = {}
            if rnd.random() < 0.05:
                source_values = {"margin": rnd.choice((0.5, 3.0, -1.0))}
            elif rnd.random() < 0.05:
                source_values = {"scores": {c.id: float(rnd.randint(1, 10)) for c in cs}}
            judgments.append(Judgment(
                prompt_id=p.id, tutor_id=t.id, ranks=ranks, all_bad=all_bad, flags=flags, ratings=ratings,
                rationale=rnd.choice(("", "clearer", "safer — ok")), strength=rnd.choice((1, 2, 2, 3)),
                seconds_spent=float(rnd.randint(5, 90)), display_order=[c.id for c in reversed(cs)],
                correction=corr, id=nid("j"), created_at=when(), source_values=source_values,
            ))  # fmt: skip
    store.bulk_insert(tutors=tutors, prompts=prompts, candidates=cands, judgments=judgments)
    by_prompt: dict[str, list[Candidate]] = {}
    for c in cands:
        by_prompt.setdefault(c.prompt_id, []).append(c)
    for p in prompts[::13]:
        cs = by_prompt[p.id]
        store.add_adjudication(Adjudication(prompt_id=p.id, ranks={c.id: j + 1 for j, c in enumerate(cs)},
                                            rationale="ruled", adjudicator="lead", id=nid("a"),
                                            created_at=when()))  # fmt: skip
    return store
