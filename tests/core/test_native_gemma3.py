"""A Gemma 3 loaded without transformers (core/backends/native_gemma3.py) against the same
model loaded through transformers: the same tokens, the same EOS ids, the same candidates
for every seed and setting; when it applies and when the load falls back; and (slow) the
embedded model's warm start in a fresh process, which never imports transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hitl_desktop.core.backends import cache, native_gemma3  # noqa: E402
from hitl_desktop.core.backends.base import SamplingParams  # noqa: E402
from hitl_desktop.core.backends.gguf_files import _fast_tokenizer  # noqa: E402
from hitl_desktop.core.backends.loading import INT8_KERNEL_ENV  # noqa: E402
from hitl_desktop.core.backends.tiny import build_tiny_model  # noqa: E402
from hitl_desktop.core.backends.transformers_backend import NativeGemma3Backend, TransformersBackend  # noqa: E402
from hitl_desktop.core.types import Message  # noqa: E402

SPECIAL = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}
CONVERSATIONS = [
    [Message("user", "What is the capital of France?")],
    [Message("system", "Be brief."), Message("user", "Interest rates rose."), Message("assistant", "By a quarter."),
     Message("user", "Caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001f600 what now?")],
]  # fmt: skip
SETTINGS = [
    SamplingParams(max_new_tokens=24),
    SamplingParams(temperature=0.0, max_new_tokens=24),
    SamplingParams(temperature=1.3, top_p=0.8, top_k=20, repetition_penalty=1.3, max_new_tokens=24),
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny Gemma 3 folder as a GGUF conversion leaves it (``hitl_source.json`` naming its
    sha256 and a tokenizer.json that loads alone) inside a cache root."""
    root = tmp_path_factory.mktemp("native-cache")
    folder = build_tiny_model(root / "models" / "tiny-gemma3")
    (folder / cache.SOURCE_FILE).write_text(
        json.dumps({"sha256": "ab" * 32, "name": "tiny-gemma3", "fast_tokenizer": True, "tokenizer_kwargs": SPECIAL})
    )
    return root, folder


@pytest.fixture
def weight_only(monkeypatch):
    monkeypatch.setenv(INT8_KERNEL_ENV, "weight_only")
    monkeypatch.delenv(native_gemma3.ENV, raising=False)


def load(folder: Path, root: Path) -> TransformersBackend:
    return TransformersBackend.load(folder, dtype="bfloat16", cache_dir=root)


def texts(result):
    return [(c.text, c.tokens, c.finish_reason) for c in result.candidates]


def test_second_load_is_native_and_writes_what_transformers_writes(converted, weight_only):
    root, folder = converted
    first = load(folder, root)  # through transformers: it keeps the int8 tables
    assert type(first) is TransformersBackend and first.weights == "int8"
    assert cache.int8_tables_path("ab" * 32, root).is_file()
    second = load(folder, root)
    assert type(second) is NativeGemma3Backend
    assert second.model is None and second.lean is not None
    assert (second.name, second.revision, second.dtype, second.weights) == (first.name, first.revision, "bfloat16", "int8")
    assert (second.eos_ids, second.pad_id, second.max_positions, second.vocab_size) == (
        first.eos_ids, first.pad_id, first.max_positions, first.vocab_size,
    )  # fmt: skip
    assert second.prompt_format == first.prompt_format == "plain"
    for conv in CONVERSATIONS:
        assert second.encode_prompt(conv) == first.encode_prompt(conv)
        for params in SETTINGS:
            for k, seeds in ((4, [1, 2, 3, 4]), (1, [9]), (3, [5, 5, 6])):
                a = first.generate(conv, k=k, params=params, seeds=seeds)
                b = second.generate(conv, k=k, params=params, seeds=seeds)
                assert texts(b) == texts(a), (conv, params, seeds)
                assert b.params == a.params


def test_native_tokenizer_is_the_fast_tokenizer_of_the_same_file(converted):
    _, folder = converted
    ours = native_gemma3.TokenizerFile(folder / "tokenizer.json", SPECIAL)
    theirs = _fast_tokenizer(folder, SPECIAL)
    probes = ["", "User: What is the capital of France?\n\nAssistant:", "Caf\u00e9 \u65e5\u672c\u8a9e \U0001f600 <eos> <pad>x", "  two  spaces\t\n"]
    for text in probes:
        for special in (True, False):
            assert ours(text, add_special_tokens=special).input_ids == theirs(text, add_special_tokens=special).input_ids
        ids = theirs(text).input_ids
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.backend_tokenizer.decode(ids, skip_special_tokens=skip)
    for name in ("eos_token_id", "bos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for token in ("<end_of_turn>", "<eos>", "not-a-token-at-all"):
        assert ours.convert_tokens_to_ids(token) == theirs.convert_tokens_to_ids(token)
    assert set(ours.added_tokens_decoder) == set(theirs.added_tokens_decoder)
    assert len(ours) == len(theirs)


def test_what_loads_natively(converted, weight_only, monkeypatch, tmp_path):
    root, folder = converted
    load(folder, root)  # the tables exist
    kw = dict(root=root, device="cpu", dtype=torch.bfloat16, kernel="weight_only", int8=True)
    assert native_gemma3.loadable(folder, **kw) == cache.int8_tables_path("ab" * 32, root)
    assert native_gemma3.loadable(folder, **{**kw, "device": "cuda"}) is None
    assert native_gemma3.loadable(folder, **{**kw, "dtype": torch.float32}) is None
    assert native_gemma3.loadable(folder, **{**kw, "kernel": "fbgemm"}) is None
    assert native_gemma3.loadable(folder, **{**kw, "int8": False}) is None
    assert native_gemma3.loadable(folder, **{**kw, "root": tmp_path}) is None  # no tables there
    monkeypatch.setenv(native_gemma3.ENV, "0")
    assert native_gemma3.loadable(folder, **kw) is None
    assert type(load(folder, root)) is TransformersBackend
    monkeypatch.delenv(native_gemma3.ENV)
    # a chat template, another architecture, a rotary that is not made here: transformers
    config = json.loads((folder / "config.json").read_text())
    for change in ({"architectures": ["LlamaForCausalLM"]}, {"attn_logit_softcapping": 50.0},
                   {"rope_parameters": {t: {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}
                                        for t in set(config["layer_types"])}}):  # fmt: skip
        assert not native_gemma3._supported_config({**config, **change}), change
    assert native_gemma3._supported_config(config)
    other = tmp_path / "chat"
    other.mkdir()
    for f in folder.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "chat_template.jinja").write_text("{{ messages }}")
    assert native_gemma3.loadable(other, **kw) is None


def test_damaged_tables_load_through_transformers_and_are_made_again(converted, weight_only, tmp_path):
    _, folder = converted
    root = tmp_path / "cache"
    first = load(folder, root)
    tables = cache.int8_tables_path("ab" * 32, root)
    tables.write_bytes(tables.read_bytes()[:1000])  # truncated
    again = load(folder, root)
    assert type(again) is TransformersBackend  # and it wrote the tables again
    assert type(load(folder, root)) is NativeGemma3Backend
    params = SETTINGS[0]
    assert texts(load(folder, root).generate(CONVERSATIONS[0], k=2, params=params, seeds=[1, 2])) == texts(
        first.generate(CONVERSATIONS[0], k=2, params=params, seeds=[1, 2])
    )
    # tables of another shape (another model's under this name): transformers again
    torch.save({"lm_head.weight": torch.zeros(3, 8, dtype=torch.int8), "lm_head.scales": torch.ones(3)}, tables)
    assert type(load(folder, root)) is TransformersBackend


@pytest.mark.slow
def test_embedded_model_warm_start_never_imports_transformers(tmp_path):
    """The embedded model's second start, in a fresh process: loaded without transformers
    (nor torch._dynamo), and its candidates are those of the first (transformers') load."""
    root = tmp_path / "cache"
    script = (
        "import json, sys\n"
        "from hitl_desktop.core.backends.transformers_backend import load_backend\n"
        "from hitl_desktop.core.backends.base import SamplingParams\n"
        "from hitl_desktop.core.types import Message\n"
        "b = load_backend(None)\n"
        "r = b.generate([Message('user', 'What does aspirin do?')], k=3, params=SamplingParams(max_new_tokens=20), seeds=[1, 2, 3])\n"
        "print(json.dumps({'kind': type(b).__name__, 'transformers': 'transformers' in sys.modules,\n"
        "  'dynamo': 'torch._dynamo' in sys.modules, 'texts': [c.text for c in r.candidates]}))\n"
    )
    env = {**os.environ, cache.CACHE_ENV: str(root), INT8_KERNEL_ENV: "weight_only"}
    env.pop(native_gemma3.ENV, None)
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs[0]["kind"] == "TransformersBackend" and runs[0]["transformers"]
    assert runs[1] == {**runs[0], "kind": "NativeGemma3Backend", "transformers": False, "dynamo": False}
    assert all(runs[1]["texts"])
