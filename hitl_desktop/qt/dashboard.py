"""The quality dashboard: agreement per domain, per-tutor figures, three small bar charts.

``QualityDashboard(store, parent=None)`` is a non-modal dialog; ``refresh()`` recomputes.
The figures come from ``core.quality.quality_summary`` and, for rubrics,
``core.rubric_agreement`` (``rubric_stats``, ``disagreed_criteria``; :func:`figures`), and the
dashboard only shows them:

* on the GUI thread when the database is small (or in memory);
* for a larger database, in a worker thread with its OWN read-only Store on ``store.path``
  (SQLite connections belong to one thread); the result comes back by signal.

Tables are Qt item models over the core dicts (``FiguresTableModel``); charts are painted
with QPainter (``BarChart``), no chart library needed. "Export report…" writes the Markdown
or HTML report of what is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.access import open_for_reading
from hitl_desktop.core.quality import fmt, pct, quality_summary, write_report
from hitl_desktop.core.rubric_agreement import disagreed_criteria, rubric_stats
from hitl_desktop.core.store import Store
from hitl_desktop.qt.bar_chart import BarChart, Series
from hitl_desktop.qt.models_chart import ModelStrengthChart
from hitl_desktop.qt.ops import OperationRunner, collector_paused
from hitl_desktop.qt.rubric_charts import RubricCharts

#: Above this many judgments the figures are computed in a worker thread.
WORKER_THRESHOLD = 2000

#: The worker's figures start this long after the dialog is made (shown and painted by then).
FIRST_REFRESH_MS = 30
#: With a worker, the charts and tables are built this long after the dialog is made: a timer
#: of 1 ms, not 0 (Qt runs a 0 ms single shot as a posted event, before the event loop turns).
BODY_MS = 1

ALL_DOMAINS_LABEL = "All domains"
SortRole = Qt.ItemDataRole.UserRole + 1


# -- table models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    key: str  # the value shown and sorted by
    format: Callable[[Any], str] = str
    tooltip: str = ""
    numeric: bool = True
    render: Callable[[dict[str, Any]], str] | None = None  # the whole row -> text, if given


def _count(v: Any) -> str:
    return str(v)


def _with_n(key: str, n_key: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: "–" if row.get(key) is None else f"{fmt(row[key])}  ({row.get(n_key, 0)})"


def _first_shown(row: dict[str, Any]) -> str:
    if not row.get("position_items"):
        return "–"
    return f"{pct(row['first_shown_best'])}  (chance {pct(row['first_shown_expected'])})"


TUTOR_COLUMNS: tuple[Column, ...] = (
    Column("Tutor", "tutor", numeric=False),
    Column("Domains", "domains", lambda v: ", ".join(v) or "–", numeric=False),
    Column("Judgments", "judgments", _count),
    Column("Median s", "median_seconds", lambda v: fmt(v, 1), "Median seconds spent per judgment"),
    Column("Items/h", "items_per_hour", lambda v: fmt(v, 0), "3600 / median seconds per item"),
    Column(
        "τ-b vs others (n)",
        "agreement_with_others",
        tooltip="Mean Kendall tau-b against every other tutor over the prompts both judged; "
        "n = (prompt, other tutor) comparisons",
        render=_with_n("agreement_with_others", "comparisons"),
    ),
    Column(
        "τ-b vs gold (n)",
        "agreement_with_gold",
        tooltip="Mean Kendall tau-b against the gold ranking; n = gold items judged",
        render=_with_n("agreement_with_gold", "gold_items"),
    ),
    Column(
        "First shown ranked best",
        "first_shown_best",
        tooltip="How often the candidate shown first got the best rank, and the share expected "
        "by chance (1/K, more with ties at the top)",
        render=_first_shown,
    ),
    Column(
        "Bias p",
        "position_bias_p",
        lambda v: fmt(v, 3),
        "One-sided binomial test: a small p means the candidate shown first wins more than chance",
    ),
    Column("Corrections", "corrections", _count),
)

GOLD_COLUMNS: tuple[Column, ...] = (
    Column("Tutor", "tutor", numeric=False),
    Column(
        "τ-b vs gold",
        "agreement_with_gold",
        lambda v: fmt(v, 2),
        "Mean Kendall tau-b between the tutor's ranking and the gold ranking",
    ),
    Column("Gold items", "gold_items", _count, "Gold items the tutor judged (taus in that mean)"),
)

DOMAIN_COLUMNS: tuple[Column, ...] = (
    Column("Domain", "domain", numeric=False),
    Column("Prompts", "prompts", _count, "Prompts ranked by two or more tutors"),
    Column("Units", "units", _count, "(prompt, candidate) units with two or more ranks"),
    Column(
        "Krippendorff's α",
        "krippendorff_alpha",
        lambda v: fmt(v, 3),
        "Ordinal alpha over the ranks; 1 = perfect, 0 = chance",
    ),
    Column(
        "Kendall τ-b",
        "kendall_tau",
        lambda v: fmt(v, 3),
        "Mean tau-b over every two tutors and prompt",
    ),
    Column("Pairs", "pairs", _count, "(prompt, tutor pair) taus in that mean"),
)


class FiguresTableModel(QAbstractTableModel):
    """A read-only table over a list of dicts (the core's figures), one row per dict."""

    def __init__(self, columns: Sequence[Column], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._columns = tuple(columns)
        self._rows: list[dict[str, Any]] = []

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = [dict(r) for r in rows]
        self.endResetModel()

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        if not 0 <= index.column() < len(self._columns):
            return None
        col = self._columns[index.column()]
        value = self._rows[index.row()].get(col.key)
        if role == Qt.ItemDataRole.DisplayRole:
            if col.render is not None:
                return col.render(self._rows[index.row()])
            return "–" if value is None else col.format(value)
        if role == SortRole:
            if col.numeric:
                return float("-inf") if value is None else float(value)
            return ", ".join(value) if isinstance(value, list) else str(value or "")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            horizontal = Qt.AlignmentFlag.AlignRight if col.numeric else Qt.AlignmentFlag.AlignLeft
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        col = self._columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.header
        if role == Qt.ItemDataRole.ToolTipRole:
            return col.tooltip or None
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemNeverHasChildren
        )


# -- bar charts -------------------------------------------------------------------------------


def _figures(db_path: str, domain: str | None) -> dict[str, Any]:
    """The figures, in an operation's thread, on a read-only connection of its own; the cycle
    collector paused meanwhile (its full collections over the many objects a lab database
    makes held the GIL 100-180 ms each: gaps in the GUI thread's event loop)."""
    with collector_paused(), open_for_reading(db_path) as store:
        return figures(store, domain)


def figures(store: Store, domain: str | None) -> dict[str, Any]:
    """``quality_summary`` with the rubric figures: ``"rubrics"`` (``stats --json``'s, the
    whole database) and ``"rubric_criteria"`` (the criteria tutors disagree on most)."""
    summary = quality_summary(store, domain=domain)
    summary.setdefault("rubrics", rubric_stats(store))
    summary.setdefault("rubric_criteria", disagreed_criteria(store, limit=12))
    return summary


# -- the dialog ---------------------------------------------------------------------------------


def heading(text: str) -> QLabel:
    """A window's title line (also the review mode's)."""
    title = QLabel(text)
    title.setObjectName("PanelTitle")
    f = title.font()
    f.setPointSizeF(f.pointSizeF() * 1.25)
    title.setFont(f)
    return title


def panel(title: str, body: QWidget, *, caption: str = "PanelTitle") -> QFrame:
    """A framed panel: a title (styled as ``caption``) over ``body`` (also the review mode's)."""
    frame = QFrame()
    frame.setObjectName("Panel")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(10, 8, 10, 10)
    lay.setSpacing(6)
    label = QLabel(title)
    label.setObjectName(caption)
    lay.addWidget(label)
    lay.addWidget(body)
    return frame


class QualityDashboard(QDialog):
    """Quality figures per domain and tutor, with charts and a report export."""

    refreshed = Signal()  # the figures on show are up to date
    report_written = Signal(str)  # path
    failed = Signal(str)

    def __init__(self, store: Store, parent: QWidget | None = None, *, show_gold: bool = True) -> None:
        super().__init__(parent)
        self.store = store
        self.show_gold = show_gold
        self.summary: dict[str, Any] | None = None
        self._request = 0
        self._threads: list[OperationRunner] = []  # the figures being computed in the background
        self._filling_domains = False
        self._closed = False
        self.setWindowTitle("Quality dashboard")
        self.setObjectName("QualityDashboard")
        self.setModal(False)
        self.resize(1180, 820)
        self._body_built = False
        self._build_head()
        if self.use_worker():
            # a lab database: the charts and tables in the event loop's next turn, so that
            # opening the dialog is two short slices of the GUI thread, not one of ~100 ms
            # (benchmarks/bench_dashboard.py); the figures once the dialog is on screen, so
            # that its first layout and paint don't wait on the worker's GIL
            QTimer.singleShot(BODY_MS, self, self._build_body)
            QTimer.singleShot(FIRST_REFRESH_MS, self, self._first_refresh)
        else:
            self._build_body()
            self.refresh()

    @Slot()
    def _first_refresh(self) -> None:
        if not self._closed and self.summary is None and not self._threads:
            self.refresh()

    # -- layout -------------------------------------------------------------------------------

    def _build_head(self) -> None:
        """The top row (domain, Refresh, Export report…) and the tiles."""
        outer = self._outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 14, 14, 14)
        outer.setSpacing(10)

        top = QHBoxLayout()
        top.addWidget(heading("Quality dashboard"))
        top.addSpacing(12)
        self.domain_box = QComboBox()
        self.domain_box.setObjectName("DomainBox")
        self.domain_box.setAccessibleName("Domain shown")
        self.domain_box.setMinimumWidth(160)
        self.domain_box.setToolTip("Figures for one domain, or for all of them")
        self.domain_box.addItem(ALL_DOMAINS_LABEL, None)
        self.domain_box.currentIndexChanged.connect(self._domain_changed)
        top.addWidget(self.domain_box)
        top.addStretch(1)
        self.status = QLabel("")
        self.status.setObjectName("Muted")
        top.addWidget(self.status)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        self.export_button = QPushButton("Export report…")
        self.export_button.setObjectName("Primary")
        self.export_button.clicked.connect(self.export_report)
        top.addWidget(self.export_button)
        outer.addLayout(top)

        tiles = QHBoxLayout()
        tiles.setSpacing(10)
        self.tiles: dict[str, QLabel] = {}
        for key, caption, tip in (
            (
                "krippendorff_alpha",
                "Krippendorff's α (ordinal)",
                "Agreement between tutors over the ranks",
            ),
            ("kendall_tau", "Mean Kendall τ-b", "Mean tau-b over every two tutors and prompt"),
            ("prompts", "Prompts compared", "Prompts ranked by two or more tutors"),
            ("judgments", "Judgments", "Judgments in this view"),
            ("tutors", "Tutors", "Tutors in this view"),
        ):
            tile, value = self._tile(caption, tip)
            self.tiles[key] = value
            tiles.addWidget(tile)
        outer.addLayout(tiles)

    @Slot()
    def _build_body(self) -> None:
        """The charts, the tables and the note, built in a widget of their own and added to
        the dialog whole (once)."""
        if self._body_built:
            return
        self._body_built = True
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(10)
        charts = QHBoxLayout()
        charts.setSpacing(10)
        self.agreement_chart = BarChart("Agreement by domain")
        self.throughput_chart = BarChart("Throughput per tutor (items/hour)")
        self.position_chart = BarChart("Position bias: first shown ranked best")
        self.models_chart = ModelStrengthChart()  # shown when candidates of two models were ranked
        self.models_chart.setVisible(False)
        for c in (self.agreement_chart, self.throughput_chart, self.position_chart, self.models_chart):
            charts.addWidget(c)
        chart_host = QWidget()
        chart_host.setLayout(charts)
        charts.setContentsMargins(0, 0, 0, 0)

        self.tutor_model = FiguresTableModel(TUTOR_COLUMNS, self)
        self.domain_model = FiguresTableModel(DOMAIN_COLUMNS, self)
        self.tutor_view = self._table(self.tutor_model, "TutorTable")
        self.tutor_view.setAccessibleName("Figures per tutor")
        # gold items are mixed into the queues unannounced: a live per-tutor "vs gold (n)" tells
        # a tutor which item they just submitted was gold and, with Undo, how to match it; so
        # gold figures are for leads (show_gold), and only where the database holds gold keys
        self.gold_model = FiguresTableModel(GOLD_COLUMNS, self)
        self.gold_view = self._table(self.gold_model, "GoldTable")
        self.gold_view.setAccessibleName("Agreement with gold items per tutor")
        self.domain_view = self._table(self.domain_model, "DomainTable")
        self.domain_view.setAccessibleName("Agreement by domain")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(chart_host)
        # per-criterion agreement between tutors and each model grader's macro-F1 per axis
        self.rubric_charts = RubricCharts()
        self.rubric_charts.setMinimumHeight(200)
        self.rubric_panel = self._panel("Rubrics: criteria tutors disagree on, model graders against the tutors"
                                        " (all domains)", self.rubric_charts)  # fmt: skip
        self.rubric_panel.hide()
        splitter.addWidget(self.rubric_panel)
        splitter.addWidget(self._panel("Tutors", self.tutor_view))
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.setChildrenCollapsible(False)
        bottom.addWidget(self._panel("Agreement by domain", self.domain_view))
        self.gold_panel = self._panel("Gold items (leads only)", self.gold_view)
        bottom.addWidget(self.gold_panel)
        self.gold_panel.hide()
        splitter.addWidget(bottom)
        for i, stretch in enumerate((5, 4, 4, 3)):
            splitter.setStretchFactor(i, stretch)
        splitter.setSizes([270, 240, 300, 180])
        outer.addWidget(splitter, 1)

        note = QLabel(
            "τ-b: −1 reversed … 1 identical rankings. α: 1 perfect, 0 chance (≥ 0.8 firm, ≥ 0.667 "
            "tentative). Each tutor's latest judgment of a prompt counts. Hover a column title for more."
        )
        note.setObjectName("Hint")
        note.setWordWrap(True)
        outer.addWidget(note)
        self._outer.addWidget(body, 1)

    def _tile(self, caption: str, tip: str) -> tuple[QFrame, QLabel]:
        frame = QFrame()
        frame.setObjectName("Panel")
        frame.setToolTip(tip)
        lay = QVBoxLayout(frame)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(2)
        cap = QLabel(caption)
        cap.setObjectName("Muted")
        value = QLabel("–")
        f = value.font()
        f.setPointSizeF(f.pointSizeF() * 1.6)
        f.setWeight(QFont.Weight.DemiBold)
        value.setFont(f)
        lay.addWidget(cap)
        lay.addWidget(value)
        return frame, value

    def _panel(self, title: str, body: QWidget) -> QFrame:
        return panel(title, body)

    def _table(self, model: FiguresTableModel, name: str) -> QTableView:
        proxy = QSortFilterProxyModel(self)
        proxy.setSourceModel(model)
        proxy.setSortRole(SortRole)
        view = QTableView()
        view.setObjectName(name)
        view.setModel(proxy)
        view.setSortingEnabled(True)
        view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        view.setAlternatingRowColors(True)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.verticalHeader().setVisible(False)
        view.setShowGrid(False)
        view.setWordWrap(False)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
        view.setStyleSheet("QTableView::item { padding: 0px 10px 0px 6px; }")
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        if name == "TutorTable":  # the domains column takes the spare width
            header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        view.setFrameShape(QFrame.Shape.NoFrame)
        return view

    # -- computing ----------------------------------------------------------------------------

    def current_domain(self) -> str | None:
        return self.domain_box.currentData()

    def _domain_changed(self, _index: int) -> None:
        if not self._filling_domains:
            self.refresh()

    def _fill_domains(self) -> None:
        wanted = self.current_domain()
        domains = self.store.domains()
        self._filling_domains = True
        try:
            self.domain_box.clear()
            self.domain_box.addItem(ALL_DOMAINS_LABEL, None)
            for d in domains:
                self.domain_box.addItem(d, d)
            i = self.domain_box.findData(wanted) if wanted is not None else 0
            self.domain_box.setCurrentIndex(max(0, i))
        finally:
            self._filling_domains = False

    def use_worker(self) -> bool:
        """A worker for a file database with many judgments; the GUI thread otherwise."""
        if self.store.path is None:
            return False
        return self.store.table_counts(("judgments",))["judgments"] > WORKER_THRESHOLD

    @Slot()
    def refresh(self) -> None:
        """Recompute the figures (for the domain chosen) and show them."""
        self._build_body()  # (built already, but for a refresh asked in the turn that made the dialog)
        self._fill_domains()
        self._request += 1
        request, domain = self._request, self.current_domain()
        if not self.use_worker():
            try:
                summary = figures(self.store, domain)
            except Exception as e:  # noqa: BLE001
                self._on_failed(request, f"{type(e).__name__}: {e}")
                return
            self._on_computed(request, summary)
            return
        self.status.setText("Computing…")
        runner = OperationRunner(self, name="quality-dashboard")
        db_path = str(self.store.path)
        self._threads.append(runner)

        def finished(call, value) -> None:
            self._threads.remove(runner)
            runner.deleteLater()
            call(request, value)

        runner.run(
            lambda _progress, _cancelled: _figures(db_path, domain),
            on_success=lambda summary: finished(self._on_computed, summary),
            on_failure=lambda message: finished(self._on_failed, message),
        )

    @Slot(int, object)
    def _on_computed(self, request: int, summary: dict[str, Any]) -> None:
        if request != self._request:
            return  # a newer refresh is under way
        self.summary = summary
        self._show(summary)
        self.status.setText(f"Updated {summary['generated_at'][11:16]} UTC")
        self.refreshed.emit()

    @Slot(int, str)
    def _on_failed(self, request: int, message: str) -> None:
        if request != self._request:
            return
        self.status.setText("Could not compute the figures")
        self.status.setToolTip(message)
        self.failed.emit(message)

    def wait_for_workers(self, timeout_ms: int = 30000) -> bool:
        ok = True
        for runner in list(self._threads):
            ok = runner.wait(timeout_ms) and ok
        return ok

    def done(self, result: int) -> None:
        self._closed = True
        self._request += 1  # late results are ignored
        self.wait_for_workers()
        super().done(result)

    def closeEvent(self, event) -> None:  # noqa: N802
        self._closed = True
        self._request += 1
        self.wait_for_workers()
        super().closeEvent(event)

    # -- showing ------------------------------------------------------------------------------

    def _show(self, summary: dict[str, Any]) -> None:
        a = summary["agreement"]
        tutors = [t for t in summary["tutors"] if t["judgments"] > 0]
        self.tiles["krippendorff_alpha"].setText(fmt(a["krippendorff_alpha"], 3))
        self.tiles["kendall_tau"].setText(fmt(a["kendall_tau"], 3))
        self.tiles["prompts"].setText(str(a["prompts"]))
        self.tiles["judgments"].setText(str(summary["judgments"]))
        self.tiles["tutors"].setText(str(len(tutors)))

        self.tutor_model.set_rows(summary["tutors"])
        gold_rows = [t for t in summary["tutors"] if t["gold_items"]]
        self.gold_model.set_rows(gold_rows)
        gold_shown = self.show_gold and summary["gold_prompts"] > 0
        self.gold_panel.setVisible(gold_shown)
        gold_column = next(i for i, c in enumerate(TUTOR_COLUMNS) if c.key == "agreement_with_gold")
        self.tutor_view.setColumnHidden(gold_column, not gold_shown)
        self.domain_model.set_rows([{"domain": d, **v} for d, v in summary["by_domain"].items()])

        by_domain = summary["by_domain"]
        domains = list(by_domain)
        taus = [by_domain[d]["kendall_tau"] for d in domains]
        alphas = [by_domain[d]["krippendorff_alpha"] for d in domains]
        negative = any(v is not None and v < 0 for v in taus + alphas)
        self.agreement_chart.set_data(
            domains,
            [Series("Kendall τ-b", taus, "accent"), Series("Krippendorff's α", alphas, "success")],
            lo=-1.0 if negative else 0.0,
            hi=1.0,
        )
        names = [t["tutor"] for t in tutors]
        self.throughput_chart.set_data(
            names,
            [Series("", [t["items_per_hour"] for t in tutors], "accent")],
            label_format=lambda v: f"{v:.0f}",
        )
        self.position_chart.set_data(
            names,
            [
                Series(
                    "observed",
                    [t["first_shown_best"] for t in tutors],
                    "accent",
                )
            ],
            lo=0.0,
            hi=1.0,
            markers=[t["first_shown_expected"] for t in tutors],
            marker_label="chance",
            label_format=lambda v: f"{100 * v:.0f}%",
        )
        self.models_chart.set_models(summary.get("models") or {})
        self.models_chart.setVisible(bool(summary.get("models")))
        rubrics = summary.get("rubrics") or {}
        self.rubric_charts.set_stats(rubrics, by_criterion=summary.get("rubric_criteria") or None)
        self.rubric_panel.setVisible(bool(rubrics.get("graded_completions")))

    def set_show_gold(self, on: bool) -> None:
        """Show gold figures (a lead) or hide them (a tutor); takes effect at once."""
        self.show_gold = on
        if self.summary is not None:
            self._show(self.summary)

    # -- report -------------------------------------------------------------------------------

    @Slot()
    def export_report(self) -> str | None:
        """Ask for a file and write the report of what is shown (Markdown, or HTML by suffix)."""
        if self.summary is None:
            return None
        scope = self.current_domain() or "all"
        start = Path(self.store.path).parent if self.store.path else Path.home()
        path, selected = QFileDialog.getSaveFileName(
            self,
            "Export quality report",
            str(start / f"quality-report-{scope}.md"),
            "Markdown (*.md);;HTML (*.html)",
        )
        if not path:
            return None
        p = Path(path)
        if not p.suffix:
            p = p.with_suffix(".html" if selected.startswith("HTML") else ".md")
        try:
            write_report(None, p, summary=self.summary)
        except OSError as e:
            message = f"Could not write {p}: {e.strerror or e}"
            self.status.setText(message)
            self.failed.emit(message)
            return None
        self.status.setText(f"Report written to {p.name}")
        self.status.setToolTip(str(p))
        self.report_written.emit(str(p))
        return str(p)
