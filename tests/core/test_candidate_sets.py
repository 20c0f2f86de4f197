"""Generated candidates are stored by one set of rules (core/candidate_sets.py), whether the
app's workflow or ``hitl-desktop generate`` (engine.fill_queue) stores them."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.core import candidate_sets, engine, workflow
from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.candidate_sets import WorkflowError, store_generated
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.types import Candidate, Prompt


def _cands(prompt: Prompt, texts, **params) -> list[Candidate]:
    return [Candidate(prompt_id=prompt.id, text=t, index=i, seed=i, params=dict(params)) for i, t in enumerate(texts)]


def _import(store, tmp_path, records) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    import_file(store, path)


def test_the_workflow_and_the_engine_share_the_rules():
    assert workflow.WorkflowError is candidate_sets.WorkflowError
    assert workflow.is_protected is candidate_sets.is_protected
    assert engine.store_generated is workflow.store_generated is store_generated


def test_a_protected_prompt_gets_a_new_set_never_its_own(store, tmp_path):
    _import(store, tmp_path, [{"id": "q", "prompt": "Dose?", "candidates": ["lab a", "lab b"]}])
    (prompt,) = store.prompts_by_external_id(["q"]).values()
    before = store.table_counts()
    with pytest.raises(WorkflowError, match="came with the prompt"):
        store_generated(store, prompt, _cands(prompt, ["x", "y"]))
    assert store.table_counts() == before
    stored = store_generated(store, prompt, _cands(prompt, ["x", "y"]), set_id="set-2")
    origins = store.candidate_origins(prompt.id)
    assert [origins[c.id] for c in stored] == [("generated", "set-2")] * 2
    assert sorted(o for o, _ in origins.values()) == ["generated", "generated", "imported", "imported"]
    lab = next(cid for cid, (o, _) in origins.items() if o == "imported")
    with pytest.raises(Exception, match="never replaced"):
        store_generated(store, prompt, _cands(prompt, ["z"]), replaces=lab)


def test_stopped_empty_candidates_are_dropped_and_a_set_needs_two(store):
    prompt = store.add_prompt(Prompt(text="Dose?"))
    one = [*_cands(prompt, ["kept"]), Candidate(prompt_id=prompt.id, text="", index=1, params={"finish_reason": "stopped"})]
    assert store_generated(store, prompt, one) == [] and store.candidates_for(prompt.id) == []
    two = _cands(prompt, ["", "b"], finish_reason="stop")  # an empty answer the model chose is kept
    assert [c.text for c in store_generated(store, prompt, two)] == ["", "b"]


def test_generate_stores_through_the_same_rules(store, tmp_path, tiny_model_dir, monkeypatch):
    """``fill_queue`` with a real tiny model: the candidates are recorded as generated; a prompt
    whose lab candidates arrive while the model writes (an import) is skipped and reported,
    never mixed with them."""
    pytest.importorskip("torch")
    from hitl_desktop.core.backends import cache
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    backend = TransformersBackend.load(tiny_model_dir)
    _import(store, tmp_path, [{"id": "a", "prompt": "First?"}, {"id": "b", "prompt": "Second?"}])
    real = backend.generate
    calls = []

    def generate(conversation, **kw):  # noqa: ANN001, ANN003
        result = real(conversation, **kw)
        calls.append(1)
        if len(calls) == 2:  # the second prompt's lab candidates come in meanwhile
            _import(store, tmp_path, [{"id": "b", "prompt": "Second?", "candidates": ["lab 1", "lab 2"]}])
        return result

    monkeypatch.setattr(backend, "generate", generate)
    summary = engine.fill_queue(store, backend, k=2, params=SamplingParams(max_new_tokens=4))
    ids = store.prompt_ids_by_external_id(["a", "b"])
    assert summary.candidates == 2 and [p.external_id for p, _ in summary.skipped] == ["b"]
    assert "came with the prompt" in summary.skipped[0][1]
    assert sorted(store.candidate_origins(ids["a"]).values()) == [("generated", None)] * 2
    assert sorted(c.text for c in store.candidates_for(ids["b"])) == ["lab 1", "lab 2"]
