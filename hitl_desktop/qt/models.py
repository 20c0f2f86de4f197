"""Qt item models: adapters over core objects. They never persist anything."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from hitl_desktop.core.rendering import neutralize
from hitl_desktop.core.types import Prompt

PromptRole = Qt.ItemDataRole.UserRole + 1
PromptIdRole = Qt.ItemDataRole.UserRole + 2


def _one_line(text: str, limit: int = 90) -> str:
    line = " ".join(neutralize(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class PromptQueueModel(QAbstractListModel):
    """The prompts waiting on the bench, as a flat list (the store decides what is queued)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._prompts: list[Prompt] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._prompts)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._prompts):
            return None
        p = self._prompts[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            prefix = "↳ " if p.messages else ""
            return prefix + _one_line(p.text)
        if role == Qt.ItemDataRole.ToolTipRole:
            turns = f"\n\n(turn {len(p.messages) // 2 + 1} of a conversation)" if p.messages else ""
            return neutralize(p.text)[:2000] + turns
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return _one_line(p.text, 200)
        if role == PromptRole:
            return p
        if role == PromptIdRole:
            return p.id
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    # -- changes (from the window, after the store changed) -----------------------------------

    def set_prompts(self, prompts: list[Prompt]) -> None:
        self.beginResetModel()
        self._prompts = list(prompts)
        self.endResetModel()

    def prompts(self) -> list[Prompt]:
        return list(self._prompts)

    def prompt_at(self, row: int) -> Prompt | None:
        return self._prompts[row] if 0 <= row < len(self._prompts) else None

    def row_of(self, prompt_id: str) -> int:
        for i, p in enumerate(self._prompts):
            if p.id == prompt_id:
                return i
        return -1

    def insert(self, row: int, prompt: Prompt) -> None:
        row = max(0, min(row, len(self._prompts)))
        self.beginInsertRows(QModelIndex(), row, row)
        self._prompts.insert(row, prompt)
        self.endInsertRows()

    def remove(self, prompt_id: str) -> bool:
        row = self.row_of(prompt_id)
        if row < 0:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._prompts[row]
        self.endRemoveRows()
        return True

    def move_to_end(self, prompt_id: str) -> None:
        row = self.row_of(prompt_id)
        last = len(self._prompts) - 1
        if row < 0 or row == last:
            return
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), last + 1)
        self._prompts.append(self._prompts.pop(row))
        self.endMoveRows()
