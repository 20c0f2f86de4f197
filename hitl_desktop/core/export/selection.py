"""Selection: which judged items an export writes, in order, a batch at a time.

The store's judgments under the filters (each judgment's newest version), oldest first; with
``consensus`` one consensus per prompt several tutors judged (core/consensus.py), with
``adjudicated`` the leads' current rulings where there are some (core/review.py), else the
per-tutor judgments or their consensus. Consensus and adjudication are computed a prompt at a
time (every judgment of a prompt is in one batch), so memory stays flat; the output order is
that of the functions themselves (prompts in the order their first judgment appears).
Pre-selected items (``items``) are taken as they are, in memory.

The train/test split (``test_prompt_ids``) groups by conversation exactly as
``ranking.split_conversations``: it keeps only ids (and a digest of each prompt's first user
turn) in memory, never the rows.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from hitl_desktop.core.consensus import consensus_items, several_tutor_prompts
from hitl_desktop.core.judged_reader import Filters, JudgedReader
from hitl_desktop.core.ranking import split_conversations, split_prompt_ids
from hitl_desktop.core.rubric_export import attach_rubric_scores
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import CONSENSUS_TUTOR, JudgedItem


class Selection:
    """The items of one export (module docstring). ``batches()`` may be walked several times
    (a split export walks it once per split); pass ``dropped`` to one walk only."""

    def __init__(
        self,
        store: Store | None,
        filters: Filters,
        *,
        consensus: bool = False,
        adjudicated: bool = False,
        items: Iterable[JudgedItem] | None = None,
    ) -> None:
        self.store = store
        self.filters = filters
        self.consensus = consensus
        self.adjudicated = adjudicated
        self.items = None if items is None else list(items)
        self.reader = JudgedReader(store, filters) if self.items is None and store is not None else None
        self.grouped = consensus or adjudicated

    def count(self) -> int:
        """How many judgments the selection reads (a pass's progress total)."""
        return len(self.items) if self.items is not None else self.reader.count()

    def prompts(self) -> int | None:
        """How many prompts the items judge, when known without a pass (None: count them)."""
        if self.reader is not None and not self.grouped:
            return self.reader.prompts()
        return None

    def several_tutor_prompts(self) -> int | None:
        """With consensus: how many prompts (without a ruling, when adjudicated) two or more
        tutors judged; None without consensus."""
        if not self.consensus:
            return None
        if self.items is not None:
            ruled = self._ruled({i.prompt.id for i in self.items}) if self.adjudicated else set()
            return several_tutor_prompts(i for i in self.items if i.prompt.id not in ruled)
        reader = self.reader
        if self.adjudicated and self.store.has_table("adjudications"):  # ruled prompts left out
            reader = JudgedReader(
                self.store, self.filters, extra_where=["j.prompt_id not in (select prompt_id from adjudications)"]
            )
        return reader.several_tutor_prompts(consensus_tutor=CONSENSUS_TUTOR)

    def _ruled(self, prompt_ids: set[str]) -> set[str]:
        return {a.prompt_id for a in self.store.adjudications(prompt_ids=sorted(prompt_ids))}

    def batches(
        self, *, dropped: Counter[str] | None = None, on_read: Callable[[int], None] | None = None
    ) -> Iterator[list[JudgedItem]]:
        """The items to write, in batches; ``dropped`` counts what assembling them left out;
        ``on_read(n)``: n more of the selected judgments were read."""
        if self.items is not None:
            if self.items:
                yield self._assemble(self.items, dropped)
            if on_read is not None:
                on_read(len(self.items))
            return
        if self.reader is None:
            return
        for batch in self.reader.batches(by_prompt=self.grouped, on_read=on_read):
            if out := self._assemble(batch, dropped):
                yield out

    def _assemble(self, batch: list[JudgedItem], dropped: Counter[str] | None) -> list[JudgedItem]:
        # graded judgments: their pairs' margin is score(chosen) - score(rejected) (rubric_export)
        attach_rubric_scores(self.store, batch)
        if self.adjudicated:
            from hitl_desktop.core.review import adjudicated_items  # review builds on the store

            adjudications = self.store.adjudications(prompt_ids=sorted({i.prompt.id for i in batch}))
            cands = self.store.candidates_by_prompt(sorted({a.prompt_id for a in adjudications}))
            return adjudicated_items(batch, adjudications, cands, consensus=self.consensus, dropped=dropped)
        if self.consensus:
            return consensus_items(batch, dropped)
        return batch


def test_prompt_ids(
    selection: Selection, *, test_fraction: float, seed: int, on_read: Callable[[int], None] | None = None
) -> set[str]:
    """The prompt ids of the test split, exactly as ``ranking.split_conversations`` finds them
    (a conversation: the prompts sharing a first user turn, or one continuing a judgment of
    another; its key the smallest prompt id; ``ranking.split_prompt_ids`` over the keys), with
    only ids kept: one union-find node per prompt and per first turn (a digest of it)."""
    if test_fraction <= 0:
        return set()
    if selection.items is not None:
        items = [it for batch in selection.batches(on_read=on_read) for it in batch]
        return split_conversations(items, test_fraction=test_fraction, seed=seed)
    continued = {
        r[0]
        for r in selection.store.db.conn.execute(
            "select distinct parent_judgment_id from prompts where parent_judgment_id is not null"
        )
    }
    up = array("q")  # union-find: node -> parent node
    prompt_node: dict[str, int] = {}
    text_node: dict[bytes, int] = {}
    pids: list[str | None] = []  # node -> its prompt id (None: a first turn's node)
    links: list[tuple[int, str]] = []  # (prompt node, the judgment it continues)
    judged: dict[str, int] = {}  # a continued judgment -> its prompt's node

    def node(pid: str | None) -> int:
        up.append(len(up))
        pids.append(pid)
        return len(up) - 1

    def find(x: int) -> int:
        while up[x] != x:
            up[x] = up[up[x]]
            x = up[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            up[max(ra, rb)] = min(ra, rb)

    for batch in selection.batches(on_read=on_read):
        for it in batch:
            p = it.prompt
            n = prompt_node.get(p.id)
            if n is None:
                n = prompt_node[p.id] = node(p.id)
                first = next((m.content for m in p.messages if m.role == "user"), p.text)
                digest = hashlib.blake2b(first.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                t = text_node.get(digest)
                if t is None:
                    t = text_node[digest] = node(None)
                union(n, t)
                if p.parent_judgment_id:
                    links.append((n, p.parent_judgment_id))
            if it.judgment.id in continued:
                judged[it.judgment.id] = n
    for n, parent_judgment in links:
        if parent_judgment in judged:
            union(n, judged[parent_judgment])
    key: dict[int, str] = {}  # root -> the smallest prompt id of its conversation
    for n, pid in enumerate(pids):
        if pid is not None:
            r = find(n)
            if r not in key or pid < key[r]:
                key[r] = pid
    test_keys = split_prompt_ids(key.values(), test_fraction=test_fraction, seed=seed)
    return {pid for n, pid in enumerate(pids) if pid is not None and key[find(n)] in test_keys}
