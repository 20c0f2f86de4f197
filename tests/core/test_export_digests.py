"""Byte-for-byte pin of every export path (issue 18, export speed): the files each format
writes on the golden lab (tests/core/golden_lab.py), JSONL, Parquet and the Arrow stream a
datasets folder is made from, plain, --consensus, --adjudicated, split, top-ranked and
pseudonymised, against the SHA-256 digests the code before the speed work wrote
(tests/core/export_digests.json). A faster path must write the very same bytes.

Parquet files carry pyarrow's version (``created_by``): their digests are compared only
under the pyarrow the digests were made with; under another their row counts are compared with
the JSONL files' instead (a coarser check).

Regenerate (only when a contract changes the output on purpose):
``PYTHONPATH=. python tests/core/test_export_digests.py > tests/core/export_digests.json``
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from golden_lab import build_golden  # noqa: E402

from hitl_desktop.core.export import export_dataset  # noqa: E402
from hitl_desktop.core.export.columns import FORMATS  # noqa: E402

DIGESTS = Path(__file__).with_name("export_digests.json")

VARIANTS = {
    "plain": {},
    "consensus": {"consensus": True},
    "adjudicated": {"adjudicated": True},
    "adjudicated-consensus": {"adjudicated": True, "consensus": True},
    "split": {"test_fraction": 0.25, "seed": 3},
    "top-ranked": {"include_top_ranked": True},
    "pseudonymised": {"keep_tutor_names": False},
    "domain": {"domain": "law"},
}


def cases():
    for fmt in FORMATS:
        for variant, opts in VARIANTS.items():
            if fmt == "judgments" and ("consensus" in opts or "adjudicated" in opts):
                continue  # refused: the judgments format holds each tutor's own judgments
            if variant == "top-ranked" and fmt != "sft":
                continue
            for suffix in (".jsonl",) if fmt == "judgments" else (".jsonl", ".parquet"):
                yield f"{fmt}/{variant}{suffix}", fmt, opts, suffix


def build_lab(folder: Path):
    store = build_golden(folder / "lab.db", n_prompts=160)
    store.set_setting("pseudonym_salt", "golden")  # pseudonyms the same in every build
    return store


def export_files(store, folder: Path, fmt: str, opts: dict, suffix: str) -> dict[str, bytes]:
    out = folder / f"{fmt}-{'-'.join(map(str, opts.items()))}{suffix}"
    summary = export_dataset(store, fmt=fmt, out=out, **{"keep_tutor_names": True, **opts})
    got = {p.name.replace(out.stem, "out"): p.read_bytes() for p in summary.files}
    got["summary"] = json.dumps(
        {k: v for k, v in vars(summary).items() if k not in ("out", "files")}, default=str
    ).encode()  # in the summary's own order (the dropped counts in the order they were met)
    return got


def arrow_stream(store, folder: Path, fmt: str) -> bytes:
    """The Arrow IPC stream a datasets folder is saved from (files._arrow_file)."""
    from hitl_desktop.core.export import ExportOptions, _Export
    from hitl_desktop.core.export.files import _arrow_file

    ex = _Export(store, ExportOptions(fmt=fmt, out=folder / "x", keep_tutor_names=True), None, None, None, None)
    ex.test_ids = set()
    path = folder / f"{fmt}.arrow"
    _arrow_file(path, fmt, ex.arrow_rows("train"))
    return path.read_bytes()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_digests(folder: Path) -> dict[str, str]:
    import pyarrow

    store = build_lab(folder)
    try:
        out: dict[str, str] = {"pyarrow": pyarrow.__version__}
        for name, fmt, opts, suffix in cases():
            for part, data in export_files(store, folder, fmt, opts, suffix).items():
                out[f"{name}:{part}"] = digest(data)
        for fmt in FORMATS:
            if fmt != "judgments":
                out[f"{fmt}/arrow-stream"] = digest(arrow_stream(store, folder, fmt))
        return out
    finally:
        store.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digests")
    store = build_lab(folder)
    yield store, folder
    store.close()


@pytest.fixture(scope="module")
def pinned():
    return json.loads(DIGESTS.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "fmt", "opts", "suffix"), list(cases()), ids=[c[0] for c in cases()])
def test_export_writes_the_pinned_bytes(lab, pinned, name, fmt, opts, suffix):
    import pyarrow
    import pyarrow.parquet as pq

    store, folder = lab
    got = export_files(store, folder, fmt, opts, suffix)
    same_pyarrow = pinned["pyarrow"] == pyarrow.__version__
    for part, data in got.items():
        key = f"{name}:{part}"
        assert key in pinned, key
        if suffix == ".parquet" and part != "summary" and not same_pyarrow:
            jsonl = export_files(store, folder, fmt, opts, ".jsonl")[part.replace(".parquet", ".jsonl")]
            assert pq.read_table(pyarrow.BufferReader(data)).num_rows == len(jsonl.splitlines())
            continue
        assert digest(data) == pinned[key], key


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "judgments"])
def test_arrow_stream_is_the_pinned_bytes(lab, pinned, fmt):
    import pyarrow

    store, folder = lab
    if pinned["pyarrow"] != pyarrow.__version__:
        pytest.skip("digests made under another pyarrow")
    assert digest(arrow_stream(store, folder, fmt)) == pinned[f"{fmt}/arrow-stream"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(all_digests(Path(d)), indent=1, sort_keys=True))
