"""Export: format, filters, split, destination; runs in a worker thread with its own Store."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

from PySide6.QtCore import QDate, QLocale, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.workers import ExportRunner

#: The file name proposed in the start folder (numbered when one is there already).
DEFAULT_NAME = "preferences.jsonl"

FORMAT_NOTES = {
    "trl-preference": "prompt / chosen / rejected strings (TRL RewardTrainer, DPO)",
    "trl-preference-chat": "conversational prompt / chosen / rejected message lists",
    "hh-rlhf": "Anthropic HH transcripts",
    "ultrafeedback": "UltraFeedback binarized layout with scores",
    "nectar": "one row per judgment: the whole K-wise ranking",
    "kto": "unpaired good / bad completions (KTO)",
    "sft": "corrections as prompt / completion (SFT)",
}


def date_format(locale: QLocale | None = None) -> str:
    """How the date fields show a date: the system locale's short format, with the year in
    full (11/1/2026, 01.11.2026, 01/11/2026); ISO 8601 (2026-11-01) where there is no real
    locale (C, POSIX), whose "d MM yyyy" reads as "1 11 2026"."""
    locale = locale or QLocale.system()
    if locale.language() == QLocale.Language.C:
        return "yyyy-MM-dd"
    fmt = locale.dateFormat(QLocale.FormatType.ShortFormat)
    if "yyyy" not in fmt:
        fmt = fmt.replace("yy", "yyyy")
    return fmt


def start_folder(db_path: str, remembered: str = "", fallback: str = "") -> Path:
    """Where an export starts: the folder of the last export (when it is still there), else
    the database's folder, else ``fallback``; never a folder that does not exist."""
    for candidate in (remembered, str(Path(db_path).expanduser().parent) if db_path else "", fallback):
        if candidate and Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser()
    return Path.cwd()


def free_name(folder: Path, name: str = DEFAULT_NAME) -> Path:
    """``folder/name``, or ``name-2``, ``name-3``... when an earlier export is there."""
    path = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def export_formats() -> tuple[str, ...]:
    try:
        from hitl_desktop.core.export import FORMATS
    except ImportError:  # pragma: no cover - export module missing
        return tuple(FORMAT_NOTES)
    return tuple(FORMATS)


class ExportDialog(QDialog):
    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        db_path: str,
        domains: list[str],
        tutors: list[str],
        domain: str = "",
        default_dir: str = "",
        settings: AppSettings | None = None,
    ) -> None:
        """``default_dir``: where to start when there is neither a remembered export folder
        nor a database folder (the database's folder comes first: see :func:`start_folder`)."""
        super().__init__(parent)
        self.db_path = db_path
        self.settings = settings if settings is not None else getattr(parent, "settings", None) or AppSettings()
        self.summary = None
        self.setWindowTitle("Export training data")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.format_box = QComboBox()
        for f in export_formats():
            self.format_box.addItem(f, f)
        self.format_box.setAccessibleName("Format")
        self.format_note = QLabel("")
        self.format_note.setObjectName("Muted")
        self.format_box.currentIndexChanged.connect(self._format_changed)
        form.addRow("&Format", self.format_box)
        form.addRow("", self.format_note)
        self.domain_box = QComboBox()
        self.domain_box.addItem("All domains", None)
        for d in domains:
            self.domain_box.addItem(d, d)
        if domain:
            self.domain_box.setCurrentIndex(max(0, self.domain_box.findData(domain)))
        self.domain_box.setAccessibleName("Domain filter")
        form.addRow("&Domain", self.domain_box)
        self.tutor_box = QComboBox()
        self.tutor_box.addItem("All tutors", None)
        for t in tutors:
            self.tutor_box.addItem(t, t)
        self.tutor_box.setAccessibleName("Tutor filter")
        form.addRow("&Tutor", self.tutor_box)
        dates = QHBoxLayout()
        self.since_check = QCheckBox("From")
        self.since_edit = QDateEdit(QDate.currentDate().addDays(-30))
        self.since_edit.setCalendarPopup(True)
        self.since_edit.setAccessibleName("From date")
        self.until_check = QCheckBox("up to and including")
        self.until_edit = QDateEdit(QDate.currentDate())
        self.until_edit.setCalendarPopup(True)
        self.until_edit.setAccessibleName("Until date")
        for edit in (self.since_edit, self.until_edit):
            edit.setDisplayFormat(date_format())
            edit.setLocale(QLocale.system())
        for w in (self.since_check, self.since_edit, self.until_check, self.until_edit):
            dates.addWidget(w)
        dates.addStretch(1)
        form.addRow("Dates", dates)
        split = QHBoxLayout()
        self.test_spin = QDoubleSpinBox()
        self.test_spin.setRange(0.0, 0.9)
        self.test_spin.setSingleStep(0.05)
        self.test_spin.setAccessibleName("Test fraction")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setAccessibleName("Split seed")
        fraction_label = QLabel("test fraction")
        fraction_label.setBuddy(self.test_spin)
        split.addWidget(fraction_label)
        split.addWidget(self.test_spin)
        split.addSpacing(12)
        seed_label = QLabel("seed")
        seed_label.setBuddy(self.seed_spin)
        split.addWidget(seed_label)
        split.addWidget(self.seed_spin)
        split.addStretch(1)
        form.addRow("Split (by conversation)", split)
        self.keep_names = QCheckBox("Keep tutor names (otherwise pseudonyms)")
        form.addRow("", self.keep_names)
        self.adjudicated = QCheckBox("Use the lead's adjudicated ranking where there is one")
        self.adjudicated.setToolTip(
            "An adjudicated prompt exports as one judgment by the adjudicator (tutors' corrections "
            "still count); other prompts as usual"
        )
        form.addRow("", self.adjudicated)
        self.consensus = QCheckBox("Consensus of several tutors (majority pairs only)")
        self.consensus.setToolTip(
            "A prompt judged by several tutors exports only the pairs most of them agree on; "
            "each tutor's correction still counts (README: Consensus)"
        )
        form.addRow("", self.consensus)
        out = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("preferences.jsonl, .parquet, or a folder (datasets)")
        self.out_edit.setAccessibleName("Destination")
        self.start_dir = start_folder(db_path, self.settings.export_dir, default_dir)
        self.out_edit.setText(str(free_name(self.start_dir)))
        file_button = QPushButton("File…")
        file_button.setAccessibleName("Choose a destination file")
        file_button.clicked.connect(self._choose_file)
        folder_button = QPushButton("Folder…")
        folder_button.setAccessibleName("Choose a destination folder (datasets)")
        folder_button.clicked.connect(self._choose_folder)
        out.addWidget(self.out_edit, 1)
        out.addWidget(file_button)
        out.addWidget(folder_button)
        # a layout has no buddy of its own: the label needs one, or its "&" shows literally
        save_label = QLabel("&Save to")
        save_label.setBuddy(self.out_edit)
        form.addRow(save_label, out)
        layout.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setAccessibleName("Export progress")
        self.progress.hide()
        layout.addWidget(self.progress)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        # the written paths (or the reason it failed) are for copying into a terminal
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setAccessibleName("Export result")
        layout.addWidget(self.result)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.setObjectName("Primary")
        self.export_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.runner = ExportRunner(self)
        self.runner.progressed.connect(self._progressed)
        self.runner.exported.connect(self._exported)
        self.runner.failed.connect(self._failed)
        self._format_changed()

    def _format_changed(self) -> None:
        self.format_note.setText(FORMAT_NOTES.get(self.format_box.currentData() or "", ""))

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.out_edit.text() or str(self.start_dir),
            "JSON Lines (*.jsonl);;Parquet (*.parquet)",
        )
        if path:
            self.out_edit.setText(path)

    def _choose_folder(self) -> None:
        current = Path(self.out_edit.text().strip() or self.start_dir)
        start = current if current.is_dir() else current.parent
        path = QFileDialog.getExistingDirectory(
            self, "Export to a folder (Hugging Face datasets)", str(start if start.is_dir() else self.start_dir)
        )
        if path:
            self.out_edit.setText(path)

    def _remember_folder(self) -> None:
        """The folder the export went to: the next export starts there."""
        folder = Path(self.out_edit.text().strip()).expanduser().parent  # a datasets folder's too
        if folder.is_dir():
            self.settings.export_dir = str(folder.resolve())
            self.settings.sync()

    def options(self) -> dict:
        opts: dict = {
            "fmt": self.format_box.currentData(),
            "out": self.out_edit.text().strip(),
            "domain": self.domain_box.currentData(),
            "tutor": self.tutor_box.currentData(),
            "test_fraction": float(self.test_spin.value()),
            "seed": int(self.seed_spin.value()),
            "keep_tutor_names": self.keep_names.isChecked(),
        }
        if self.adjudicated.isChecked():
            opts["adjudicated"] = True
        if self.consensus.isChecked():
            opts["consensus"] = True
        if self.since_check.isChecked():
            opts["since"] = self.since_edit.date().toPython().isoformat()
        if self.until_check.isChecked():
            opts["until"] = (self.until_edit.date().toPython() + timedelta(days=1)).isoformat()
        return opts

    def start(self) -> None:
        opts = self.options()
        if not opts["out"]:
            self.result.setText("Choose where to save the export.")
            return
        self.export_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.show()
        self.result.setText("Exporting…")
        self.runner.start(db_path=self.db_path, options=opts)

    def _progressed(self, fraction: float, _message: str) -> None:
        if fraction >= 0:
            self.progress.setValue(int(fraction * 1000))

    def _exported(self, summary) -> None:
        self.summary = summary
        self._remember_folder()
        self.export_button.setEnabled(True)
        self.progress.setValue(1000)
        files = "<br>".join(html.escape(str(f)) for f in summary.files)
        split = f" (train {summary.train_rows}, test {summary.test_rows})" if summary.test_rows else ""
        self.result.setText(
            f"<b>Written:</b> {summary.rows} rows{split} in {summary.format} format from "
            f"{summary.judgments} judgments on {summary.prompts} prompts ({summary.pairs} pairs).<br>{files}"
        )

    def _failed(self, message: str) -> None:
        self.export_button.setEnabled(True)
        self.progress.hide()
        self.result.setText(f"<b>Export failed:</b> {html.escape(message)}")

    def done(self, r: int) -> None:
        self.runner.wait(30000)
        super().done(r)
