"""The tutor's preferences, kept in QSettings (per user, per machine).

Tests pass their own ``QSettings`` (an ini file in a temp folder) so they never touch the
user's settings.
"""

from __future__ import annotations

import random

from PySide6.QtCore import QByteArray, QSettings

from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.backends.devices import DEVICE_CHOICES

K_MIN, K_MAX = 2, 9


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings()

    def _get(self, key: str, default, kind):
        value = self.q.value(key, default)
        if value is None:
            return default
        try:
            if kind is bool:
                if isinstance(value, str):
                    return value.lower() in ("1", "true", "yes")
                return bool(value)
            return kind(value)
        except (TypeError, ValueError):
            return default

    # -- tutor -------------------------------------------------------------------------------

    @property
    def tutor_name(self) -> str:
        return self._get("tutor/name", "", str)

    @tutor_name.setter
    def tutor_name(self, value: str) -> None:
        self.q.setValue("tutor/name", value)

    @property
    def tutor_domains(self) -> list[str]:
        raw = self._get("tutor/domains", "", str)
        return [d for d in raw.split("\n") if d]

    @tutor_domains.setter
    def tutor_domains(self, value: list[str]) -> None:
        self.q.setValue("tutor/domains", "\n".join(value))

    @property
    def last_domain(self) -> str:
        return self._get("session/domain", "", str)

    @last_domain.setter
    def last_domain(self, value: str) -> None:
        self.q.setValue("session/domain", value)

    @property
    def lead_mode(self) -> bool:
        """A view preference for the lab's lead (not access control): every tutor's judgments
        in the history, the review of disagreements, gold figures."""
        return self._get("lead/mode", False, bool)

    @lead_mode.setter
    def lead_mode(self, value: bool) -> None:
        self.q.setValue("lead/mode", "true" if value else "false")

    @property
    def grading_grid(self) -> bool:
        """View → Grading grid: the grid under the cards when the prompt has a rubric (default on)."""
        return self._get("view/grading_grid", True, bool)

    @grading_grid.setter
    def grading_grid(self, value: bool) -> None:
        self.q.setValue("view/grading_grid", "true" if value else "false")

    # -- model and sampling --------------------------------------------------------------------

    @property
    def model_path(self) -> str:
        """'' = the embedded default model."""
        return self._get("model/path", "", str)

    @model_path.setter
    def model_path(self, value: str) -> None:
        self.q.setValue("model/path", value or "")

    @property
    def compare_models(self) -> list[str]:
        """More models whose candidates share each prompt's K (checkpoints compared): local
        paths or served models' URLs."""
        raw = self._get("model/compare", "", str)
        return [m.strip() for m in raw.split("\n") if m.strip()]

    @compare_models.setter
    def compare_models(self, value: list[str]) -> None:
        self.q.setValue("model/compare", "\n".join(m.strip() for m in value if m.strip()))

    @property
    def served_model(self) -> str:
        """The model to use on a server that serves several ('' = its only one)."""
        return self._get("model/served_model", "", str)

    @served_model.setter
    def served_model(self, value: str) -> None:
        self.q.setValue("model/served_model", (value or "").strip())

    @property
    def completions(self) -> bool:
        """Served base models: plain completions of the User:/Assistant: transcript."""
        return self._get("model/completions", False, bool)

    @completions.setter
    def completions(self, value: bool) -> None:
        self.q.setValue("model/completions", bool(value))

    @property
    def max_concurrency(self) -> int | None:
        """Streams sent to one served model at once (None: as many as candidates, K)."""
        value = self._get("model/max_concurrency", 0, int)
        return value if value and value > 0 else None

    @max_concurrency.setter
    def max_concurrency(self, value: int | None) -> None:
        self.q.setValue("model/max_concurrency", int(value or 0))

    def backend_spec(self) -> dict:
        """The arguments of ``core.backends.registry.open_backend`` for these settings."""
        models = [self.model_path or None, *self.compare_models]
        return {
            "spec": models if len(models) > 1 else models[0],
            "served_model": self.served_model or None,
            "completions": self.completions,
            "device": self.device,
            "max_concurrency": self.max_concurrency,
        }

    @property
    def device(self) -> str:
        """Where a local model runs: "auto" (CUDA, else MPS, else the CPU), "cpu", "cuda", "mps"."""
        value = self._get("model/device", "auto", str).strip().lower()
        return value if value in DEVICE_CHOICES or value.startswith("cuda:") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.q.setValue("model/device", (value or "auto").strip().lower())

    @property
    def k(self) -> int:
        return max(K_MIN, min(K_MAX, self._get("generation/k", 4, int)))

    @k.setter
    def k(self, value: int) -> None:
        self.q.setValue("generation/k", max(K_MIN, min(K_MAX, int(value))))

    @property
    def temperature(self) -> float:
        return self._get("generation/temperature", 0.8, float)

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.q.setValue("generation/temperature", float(value))

    @property
    def top_p(self) -> float:
        return self._get("generation/top_p", 0.95, float)

    @top_p.setter
    def top_p(self, value: float) -> None:
        self.q.setValue("generation/top_p", float(value))

    @property
    def max_new_tokens(self) -> int:
        return self._get("generation/max_new_tokens", 256, int)

    @max_new_tokens.setter
    def max_new_tokens(self, value: int) -> None:
        self.q.setValue("generation/max_new_tokens", int(value))

    @property
    def seed(self) -> int | None:
        """A fixed base seed (candidate i gets seed + i), or None for fresh random seeds."""
        if not self._get("generation/fixed_seed", False, bool):
            return None
        return self._get("generation/seed", 0, int)

    @seed.setter
    def seed(self, value: int | None) -> None:
        self.q.setValue("generation/fixed_seed", value is not None)
        if value is not None:
            self.q.setValue("generation/seed", int(value))

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens
        )

    def seeds(self, k: int, *, fresh: bool = False) -> list[int]:
        """Seeds for k candidates: seed+i when fixed (unless ``fresh``), else random."""
        base = self.seed
        if base is None or fresh:
            rng = random.SystemRandom()
            return [rng.randrange(2**31 - 1) for _ in range(k)]
        return [base + i for i in range(k)]

    # -- export ----------------------------------------------------------------------------------

    @property
    def export_dir(self) -> str:
        """The folder the last export went to ('' = none yet: exports start in the database's)."""
        return self._get("export/dir", "", str)

    @export_dir.setter
    def export_dir(self, value: str) -> None:
        self.q.setValue("export/dir", value or "")

    # -- window --------------------------------------------------------------------------------

    def save_state(self, key: str, data: QByteArray) -> None:
        self.q.setValue(f"window/{key}", data)

    def state(self, key: str) -> QByteArray | None:
        value = self.q.value(f"window/{key}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def sync(self) -> None:
        self.q.sync()
