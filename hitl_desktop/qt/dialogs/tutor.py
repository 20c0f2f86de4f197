"""First run (who is the tutor, which domains) and starting a session (tutor + domain)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.guidelines import check_domain
from hitl_desktop.core.types import DEFAULT_DOMAINS

#: Row height of the domain list: the list style's padding does not grow checkable rows.
DOMAIN_ROW_HEIGHT = 30


def _domain_item(text: str, *, checked: bool) -> QListWidgetItem:
    item = QListWidgetItem(text)
    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
    item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
    item.setSizeHint(QSize(0, DOMAIN_ROW_HEIGHT))
    return item

class FirstRunDialog(QDialog):
    """Asks the tutor's name and domains once; later runs remember them."""

    def __init__(self, parent: QWidget | None = None, *, name: str = "", domains: list[str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to hitl-desktop")
        self.setMinimumWidth(440)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "You will judge a local model's answers in your field: rank them, flag faults and "
            "correct the best one. Every judgment is saved at once.\n\nWho are you, and which "
            "domains do you judge?"
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.name_edit = QLineEdit(name)
        self.name_edit.setPlaceholderText("e.g. Dr. A. Rivera")
        self.name_edit.setAccessibleName("Your name")
        form.addRow("&Name", self.name_edit)
        layout.addLayout(form)
        self.domain_list = QListWidget()
        self.domain_list.setAccessibleName("Your domains")
        chosen = set(domains or [])
        for d in list(DEFAULT_DOMAINS) + [d for d in (domains or []) if d not in DEFAULT_DOMAINS]:
            self.domain_list.addItem(_domain_item(d, checked=d in chosen))
        # A click anywhere on a row ticks it, not only on its small box.
        self._pressed_state: Qt.CheckState | None = None
        self.domain_list.itemPressed.connect(self._remember_state)
        self.domain_list.itemClicked.connect(self._toggle_unless_ticked)
        layout.addWidget(QLabel("&Domains"))
        layout.itemAt(layout.count() - 1).widget().setBuddy(self.domain_list)
        layout.addWidget(self.domain_list)
        row = QHBoxLayout()
        self.custom_edit = QLineEdit()
        self.custom_edit.setPlaceholderText("Another domain (e.g. cardiology)")
        self.custom_edit.setAccessibleName("Custom domain")
        add = QPushButton("Add")
        add.clicked.connect(self._add_custom)
        self.custom_edit.returnPressed.connect(self._add_custom)
        row.addWidget(self.custom_edit, 1)
        row.addWidget(add)
        layout.addLayout(row)
        self.error = QLabel("")
        self.error.setObjectName("Muted")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _add_custom(self) -> None:
        text = self.custom_edit.text().strip().lower()
        if not text:
            return
        try:
            text = check_domain(text)
        except ValueError as e:
            self.error.setText(str(e))
            return
        for i in range(self.domain_list.count()):
            if self.domain_list.item(i).text() == text:
                self.domain_list.item(i).setCheckState(Qt.CheckState.Checked)
                break
        else:
            self.domain_list.addItem(_domain_item(text, checked=True))
        self.custom_edit.clear()

    def _remember_state(self, item: QListWidgetItem) -> None:
        self._pressed_state = item.checkState()

    def _toggle_unless_ticked(self, item: QListWidgetItem) -> None:
        # A click on the box itself has toggled it already (before "clicked" is emitted).
        if item.checkState() == self._pressed_state:
            checked = item.checkState() == Qt.CheckState.Checked
            item.setCheckState(Qt.CheckState.Unchecked if checked else Qt.CheckState.Checked)

    def name(self) -> str:
        return self.name_edit.text().strip()

    def domains(self) -> list[str]:
        return [
            self.domain_list.item(i).text()
            for i in range(self.domain_list.count())
            if self.domain_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _accept(self) -> None:
        if not self.name():
            self.error.setText("Please enter your name (it is stored with your judgments).")
            return
        if not self.domains():
            self.error.setText("Please tick at least one domain.")
            return
        self.accept()


class SessionDialog(QDialog):
    """Start a session: which tutor, which domain (guidelines follow the domain)."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        tutors: list[str],
        tutor: str,
        domains: list[str],
        domain: str,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New session")
        self.setMinimumWidth(380)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.tutor_box = QComboBox()
        self.tutor_box.setEditable(True)
        self.tutor_box.addItems(tutors)
        self.tutor_box.setCurrentText(tutor)
        self.tutor_box.setAccessibleName("Tutor")
        self.domain_box = QComboBox()
        self.domain_box.setEditable(True)
        seen: list[str] = []
        for d in [*domains, *DEFAULT_DOMAINS]:
            if d and d not in seen:
                seen.append(d)
        self.domain_box.addItems(seen)
        self.domain_box.setCurrentText(domain)
        self.domain_box.setAccessibleName("Domain")
        form.addRow("&Tutor", self.tutor_box)
        form.addRow("&Domain", self.domain_box)
        layout.addLayout(form)
        note = QLabel("The domain's guidelines stay in view; every judgment records their version.")
        note.setObjectName("Muted")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.error = QLabel("")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start session")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def tutor(self) -> str:
        return self.tutor_box.currentText().strip()

    def domain(self) -> str:
        return self.domain_box.currentText().strip().lower()

    def _accept(self) -> None:
        if not self.tutor():
            self.error.setText("A session needs a tutor.")
            return
        try:
            check_domain(self.domain())
        except ValueError as e:
            self.error.setText(str(e))
            return
        self.accept()
