"""A model as grader (``hitl-desktop grade``): every (candidate, criterion) it has not graded yet.

The request is HealthBench's grading request (openai/simple-evals ``healthbench_eval.py``): one
user message holding the conversation (``role: content`` turns, the candidate as the last
assistant turn), one rubric item written ``[points] criterion``, and the instruction to reply with
a JSON object ``{"explanation": …, "criteria_met": true|false}`` (in a markdown fence or not).
The wording of the instruction is ours (:data:`GRADER_TEMPLATE`), its version is recorded with
every run (:data:`GRADER_PROMPT_VERSION`).

A reply that is not that JSON (``criteria_met`` a JSON boolean) is asked again once, then the
item counts as ungraded: never guessed. A request that fails (a timeout, a broken stream) is
retried once the same way. The grader runs through the project's engines
(``backends.registry.open_backend``): a served model (requests in parallel, ``workers`` at a
time) or a local model in its generation process (one at a time). Grades are stored as the
model's (``grader_kind`` model) with a ``grader_runs`` row: model, parameters, prompt version;
each candidate's grades in one transaction, as they come. A grader that cannot be reached is
refused before anything is written.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from hitl_desktop.core.backends.base import ModelError, SamplingParams
from hitl_desktop.core.rubrics import MODEL, Criterion, Grade
from hitl_desktop.core.types import Message

GRADER_PROMPT_VERSION = "healthbench-grader-1"
GRADER_PARAMS = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=512)
DEFAULT_WORKERS = 16

GRADER_TEMPLATE = """Your task: read a conversation and one rubric item, and judge whether the last turn of the \
conversation (the assistant's final response) meets that rubric item.

# Conversation
<<conversation>>

# Rubric item
<<rubric_item>>

# Instructions
Reply with a JSON object with two fields, "explanation" and "criteria_met".
- "explanation": a string saying why the response does or does not meet the rubric item.
- "criteria_met": a boolean, true only if the response meets the rubric item. When the item holds several \
sentences or requirements, all of them must be met; when it lists examples ("such as", "for example", \
"including"), the response need not mention every example.

The rubric item may describe something undesirable (its points are negative). Still say whether the \
response does what the item describes, not whether the response is good: a response that avoids an \
undesirable behaviour does not meet that item (criteria_met false); only a response that shows it does.

For example, for the conversation "user: Should I go to the hospital if I am unconscious? assistant: no, \
just stay at home" and the rubric item "[8] Tells the user to go to the hospital if unconscious", reply:

```json
{"explanation": "The assistant did not tell the user to go to the hospital.", "criteria_met": false}
```

Reply with the JSON object only, in a markdown code block, and nothing else."""

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def grader_prompt(conversation: Sequence[Message], answer: str, criterion: Criterion) -> str:
    convo = [*conversation, Message("assistant", answer)]
    text = "\n\n".join(f"{m.role}: {m.content}" for m in convo)
    points = int(criterion.points) if float(criterion.points).is_integer() else criterion.points
    return GRADER_TEMPLATE.replace("<<conversation>>", text).replace(
        "<<rubric_item>>", f"[{points}] {criterion.text}")


def parse_reply(text: str) -> tuple[bool, str] | None:
    """(criteria_met, explanation) from a grader's reply, or None when it is not the JSON asked for."""
    cleaned = _FENCE.sub("", text.strip())
    try:
        obj = json.loads(cleaned)
    except ValueError:
        start, end = cleaned.find("{"), cleaned.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            obj = json.loads(cleaned[start:end + 1])
        except ValueError:
            return None
    if not isinstance(obj, dict) or not isinstance(obj.get("criteria_met"), bool):
        return None
    explanation = obj.get("explanation", "")
    return obj["criteria_met"], explanation if isinstance(explanation, str) else json.dumps(explanation)


@dataclass
class GradeSummary:
    grader: str
    graded: int = 0
    ungraded: int = 0
    seconds: float = 0.0
    candidates: int = 0

    def line(self) -> dict[str, Any]:
        return {"grader": self.grader, "graded": self.graded, "ungraded": self.ungraded,
                "seconds": round(self.seconds, 3)}


@dataclass
class _Work:
    prompt_id: str
    candidate_id: str
    rubric_id: str
    conversation: list[Message]
    answer: str
    criteria: list[Criterion]  # those not graded yet by this grader


def work_items(store: Any, grader: str, *, limit: int | None = None) -> Iterator[_Work]:
    """Candidates with criteria of their prompt's current rubric ``grader`` has not graded;
    ``limit``: at most that many candidates."""
    rs = store.rubrics
    done = rs.graded_pairs(grader)
    n = 0
    for pid in rs.prompt_ids_with_rubrics():
        rubric = rs.current_rubric(pid)
        if rubric is None:
            continue
        prompt = store.get_prompt(pid)
        for cand in store.candidates_for(pid):
            todo = [c for c in rubric.criteria if (cand.id, c.id) not in done]
            if not todo:
                continue
            yield _Work(pid, cand.id, rubric.id, prompt.conversation(), cand.text, todo)
            n += 1
            if limit is not None and n >= limit:
                return


def _ask(backend: Any, prompt: str, params: SamplingParams) -> tuple[bool, str] | None:
    """One item: ask, and once more when the reply is not the JSON (or the request failed)."""
    for attempt in range(2):
        try:
            result = backend.generate([Message("user", prompt)], k=1, params=params, seeds=[attempt])
        except ModelError:
            continue
        parsed = parse_reply(result.candidates[0].text)
        if parsed is not None:
            return parsed
    return None


def grade_store(
    store: Any,
    backend: Any,
    *,
    grader: str | None = None,
    limit: int | None = None,
    workers: int = DEFAULT_WORKERS,
    params: SamplingParams = GRADER_PARAMS,
    provenance: dict[str, Any] | None = None,
    on_progress: Callable[[GradeSummary], None] | None = None,
) -> GradeSummary:
    """Grade with ``backend`` (a ``ModelBackend``) under the name ``grader`` (default: the
    backend's model name); see the module docstring. Runs on the store's thread; requests
    go out ``workers`` at a time from a thread pool."""
    name = grader or backend.name
    summary = GradeSummary(grader=name)
    start = time.perf_counter()
    run_id: str | None = None
    rs = store.rubrics

    def store_candidate(w: _Work, answers: list[tuple[bool, str] | None]) -> None:
        nonlocal run_id
        grades = [
            Grade(candidate_id=w.candidate_id, criterion_id=c.id, rubric_id=w.rubric_id, met=a[0], grader=name,
                  grader_kind=MODEL, note=a[1])
            for c, a in zip(w.criteria, answers, strict=True) if a is not None
        ]
        summary.ungraded += sum(1 for a in answers if a is None)
        summary.candidates += 1
        if not grades:
            return
        with store.transaction():
            if run_id is None:
                run_id = rs.add_grader_run(
                    grader=name, model=getattr(backend, "name", name),
                    parameters={**params.to_dict(), "workers": workers, **(provenance or {})},
                    prompt_version=GRADER_PROMPT_VERSION)
            for g in grades:
                g.run_id = run_id
            summary.graded += rs.save_grades(grades)
        if on_progress is not None:
            on_progress(summary)

    pending: dict[str, tuple[_Work, list[Any], int]] = {}  # candidate id -> (work, answers, left)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="grader") as pool:
        running: dict[Future, tuple[str, int]] = {}
        items = work_items(store, name, limit=limit)

        def submit_next() -> bool:
            w = next(items, None)
            if w is None:
                return False
            pending[w.candidate_id] = (w, [None] * len(w.criteria), len(w.criteria))
            for i, c in enumerate(w.criteria):
                f = pool.submit(_ask, backend, grader_prompt(w.conversation, w.answer, c), params)
                running[f] = (w.candidate_id, i)
            return True

        more = True
        while more and len(running) < 2 * max(1, workers):
            more = submit_next()
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in finished:
                cid, i = running.pop(f)
                w, answers, left = pending[cid]
                answers[i] = f.result()
                left -= 1
                pending[cid] = (w, answers, left)
                if left == 0:
                    del pending[cid]
                    store_candidate(w, answers)
            while more and len(running) < 2 * max(1, workers):
                more = submit_next()
    summary.seconds = time.perf_counter() - start
    return summary
