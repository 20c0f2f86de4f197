"""Settings: which model (local, embedded, served, or several compared), K, sampling, seed."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.backends.served import is_url
from hitl_desktop.qt.settings import K_MAX, K_MIN, AppSettings

#: The device choices offered (label, settings value).
DEVICE_LABELS = (
    ("Automatic: the GPU when there is one", "auto"),
    ("NVIDIA GPU (CUDA)", "cuda"),
    ("Apple GPU (MPS)", "mps"),
    ("CPU", "cpu"),
)


class SettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, *, settings: AppSettings) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)

        model_box = QGroupBox("Model")
        ml = QVBoxLayout(model_box)
        self.embedded = QRadioButton("Embedded default (Gemma 3 270M, runs on this computer)")
        self.local = QRadioButton(
            "A local model (a Hugging Face folder or a GGUF file) or a served model's URL"
        )
        group = QButtonGroup(self)
        group.addButton(self.embedded)
        group.addButton(self.local)
        ml.addWidget(self.embedded)
        ml.addWidget(self.local)
        row = QHBoxLayout()
        self.path_edit = QLineEdit(settings.model_path)
        self.path_edit.setPlaceholderText("/path/to/model-folder, model.gguf or http://HOST:PORT/v1")
        self.path_edit.setAccessibleName("Model path")
        folder = QPushButton("Folder…")
        folder.clicked.connect(self._choose_folder)
        file = QPushButton("GGUF file…")
        file.clicked.connect(self._choose_file)
        row.addWidget(self.path_edit, 1)
        row.addWidget(folder)
        row.addWidget(file)
        ml.addLayout(row)
        self.path_error = QLabel("Choose the model's folder or .gguf file, or the embedded model.")
        self.path_error.setObjectName("Error")
        self.path_error.setWordWrap(True)
        self.path_error.hide()
        ml.addWidget(self.path_error)
        device_row = QHBoxLayout()
        self.device_combo = QComboBox()
        self.device_combo.setAccessibleName("Device")
        for label, value in DEVICE_LABELS:
            self.device_combo.addItem(label, value)
        if self.device_combo.findData(settings.device) < 0:  # e.g. cuda:1
            self.device_combo.addItem(settings.device, settings.device)
        self.device_combo.setCurrentIndex(self.device_combo.findData(settings.device))
        device_row.addWidget(QLabel("Runs on"))
        device_row.addWidget(self.device_combo, 1)
        ml.addLayout(device_row)
        (self.local if settings.model_path else self.embedded).setChecked(True)
        self.embedded.toggled.connect(self._sync)
        served = QFormLayout()
        self.served_model_edit = QLineEdit(settings.served_model)
        self.served_model_edit.setPlaceholderText("the server's only model")
        self.served_model_edit.setAccessibleName("Served model name")
        served.addRow("Served model", self.served_model_edit)
        self.completions_check = QCheckBox("Plain completions (a base model served without a chat template)")
        self.completions_check.setChecked(settings.completions)
        served.addRow(self.completions_check)
        self.concurrency_spin = QSpinBox()
        self.concurrency_spin.setRange(0, 64)
        self.concurrency_spin.setSpecialValueText("as many as candidates")
        self.concurrency_spin.setValue(settings.max_concurrency or 0)
        self.concurrency_spin.setAccessibleName("Streams at once")
        self.concurrency_spin.setToolTip("Streams sent to one server at once; a server that cuts concurrent "
                                         "streams gets its cut candidates again one at a time")
        served.addRow("Streams at once", self.concurrency_spin)
        self.compare_edit = QPlainTextEdit("\n".join(settings.compare_models))
        self.compare_edit.setPlaceholderText("one per line: a folder, a .gguf file or a URL")
        self.compare_edit.setAccessibleName("Models to compare")
        self.compare_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 4)
        served.addRow("Compare with", self.compare_edit)
        ml.addLayout(served)
        self.path_edit.textChanged.connect(self._sync_served)
        self.compare_edit.textChanged.connect(self._sync_served)
        key = QLabel("A server's API key is read from HITL_API_KEY (else OPENAI_API_KEY), never saved.")
        key.setObjectName("Muted")
        key.setWordWrap(True)
        ml.addWidget(key)
        layout.addWidget(model_box)

        gen = QGroupBox("Generation")
        form = QFormLayout(gen)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(K_MIN, K_MAX)
        self.k_spin.setValue(settings.k)
        self.k_spin.setAccessibleName("Candidates per prompt")
        form.addRow("Candidates per prompt (K)", self.k_spin)
        self.temp_spin = QDoubleSpinBox()
        self.temp_spin.setRange(0.0, 2.0)
        self.temp_spin.setSingleStep(0.05)
        self.temp_spin.setValue(settings.temperature)
        self.temp_spin.setAccessibleName("Temperature")
        form.addRow("Temperature", self.temp_spin)
        self.top_p_spin = QDoubleSpinBox()
        self.top_p_spin.setRange(0.05, 1.0)
        self.top_p_spin.setSingleStep(0.05)
        self.top_p_spin.setValue(settings.top_p)
        self.top_p_spin.setAccessibleName("Top-p")
        form.addRow("Top-p", self.top_p_spin)
        self.max_tokens_spin = QSpinBox()
        self.max_tokens_spin.setRange(16, 8192)
        self.max_tokens_spin.setSingleStep(64)
        self.max_tokens_spin.setValue(settings.max_new_tokens)
        self.max_tokens_spin.setAccessibleName("Maximum new tokens")
        form.addRow("Max new tokens", self.max_tokens_spin)
        seed_row = QHBoxLayout()
        self.fixed_seed = QCheckBox("Fixed seed")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setAccessibleName("Seed")
        seed = settings.seed
        self.fixed_seed.setChecked(seed is not None)
        self.seed_spin.setValue(seed or 0)
        self.fixed_seed.toggled.connect(self.seed_spin.setEnabled)
        self.seed_spin.setEnabled(seed is not None)
        seed_row.addWidget(self.fixed_seed)
        seed_row.addWidget(self.seed_spin, 1)
        form.addRow("Seed", seed_row)
        note = QLabel("A fixed seed makes a prompt's candidates reproducible; regenerating always draws new seeds.")
        note.setObjectName("Muted")
        note.setWordWrap(True)
        form.addRow(note)
        layout.addWidget(gen)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._sync()

    def _sync(self) -> None:
        self.path_edit.setEnabled(self.local.isChecked())
        self.path_error.hide()
        self._sync_served()

    def _sync_served(self) -> None:
        """The served model's name and plain completions mean something only for a URL (the
        model, or one to compare with)."""
        served = any(is_url(m) for m in [self.model_path(), *self.compare_models()])
        self.served_model_edit.setEnabled(served)
        self.completions_check.setEnabled(served)
        self.concurrency_spin.setEnabled(served)

    def accept(self) -> None:
        # "a local model" with no path would silently mean the embedded one
        if self.local.isChecked() and not self.path_edit.text().strip():
            self.path_error.show()
            self.path_edit.setFocus()
            return
        super().accept()

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self.path_edit.setText(path)
            self.local.setChecked(True)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model file", "", "GGUF models (*.gguf)")
        if path:
            self.path_edit.setText(path)
            self.local.setChecked(True)

    def model_path(self) -> str:
        return self.path_edit.text().strip() if self.local.isChecked() else ""

    def compare_models(self) -> list[str]:
        return [m.strip() for m in self.compare_edit.toPlainText().splitlines() if m.strip()]

    def apply(self) -> bool:
        """Write the choices to the settings; True when the model changed."""
        s = self.settings
        device = str(self.device_combo.currentData())
        changed = (self.model_path(), self.compare_models(), self.served_model_edit.text().strip(),
                   self.completions_check.isChecked(), device, self.concurrency_spin.value() or None) != (
            s.model_path, s.compare_models, s.served_model, s.completions, s.device, s.max_concurrency)
        s.model_path = self.model_path()
        s.compare_models = self.compare_models()
        s.served_model = self.served_model_edit.text().strip()
        s.completions = self.completions_check.isChecked()
        s.max_concurrency = self.concurrency_spin.value() or None
        s.device = device
        s.k = self.k_spin.value()
        s.temperature = self.temp_spin.value()
        s.top_p = self.top_p_spin.value()
        s.max_new_tokens = self.max_tokens_spin.value()
        s.seed = self.seed_spin.value() if self.fixed_seed.isChecked() else None
        s.sync()
        return changed
