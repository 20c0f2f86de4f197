"""The process settings a local model runs under: environment defaults and CPU threads.

Nothing here runs at import time (and nothing imports torch): the model process calls
:func:`apply_model_environment` before it first imports torch and transformers
(``process._child_main``), a script that loads a model in its own process calls it first too
(the benchmarks), and the loader calls :func:`configure_torch` when a model loads.

* :data:`MODEL_ENVIRONMENT`: the defaults (a variable already set is left as it is):
  ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` (the app never downloads; every load is
  ``local_files_only`` anyway), ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that sleep when
  they wait instead of spinning. With all cores in use, a busy GUI thread or another program
  otherwise makes every parallel region wait for a descheduled spinner (measured on 2 cores
  with one other busy process: 0.6 s per decoding step instead of 0.15). Alone it costs
  20-30% on an otherwise idle machine, which the short spin below wins back; set
  ``OMP_WAIT_POLICY=ACTIVE`` to spin without end instead. Only effective before torch is
  first imported.
* :data:`WINDOW_ENVIRONMENT` (the window's model process) and :data:`HEADLESS_ENVIRONMENT`
  (a parent that only takes the streamed text: the command line's ``generate`` and
  ``grade``): how long a waiting OpenMP thread spins before it sleeps (``GOMP_SPINCOUNT``,
  which overrides PASSIVE's 0). Both are added only where the user set neither
  ``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT``. A decoding step is ~2000 parallel regions,
  close together; with no spin at all each one pays a sleep and a wake-up.

  - The window: ``GOMP_SPINCOUNT=2000``, up to a tenth of a millisecond. That spans the gaps within a
    step, and a spinner gives a core back to the GUI thread within that time. Measured on a
    2-core AMD EPYC through the generation process (K=4, 64 tokens, median tok/s, four runs
    each): idle 169-197 against PASSIVE's 121-158; with a parent that keeps a core a third
    busy (10 ms of work every 30 ms) 111-141 against 113-138; with one other busy program
    the same (the :class:`CpuThreads` governor uses one thread).
  - The command line: ``GOMP_SPINCOUNT=300000``, libgomp's own ~3 ms. Measured on a 2-core
    Intel Xeon, the workload of ``benchmarks/bench_workload.py`` through the generation
    process: 85.8 tok/s against 60.4 with PASSIVE, idle; with one other busy program
    (in-process) 49.9 against 50.8, both on one thread. That long a spin is not for the
    window: a parent that keeps a core a third busy made it 48 against PASSIVE's 57 there.
* :func:`cpu_threads`: the threads of one generation on the CPU (``HITL_CPU_THREADS``);
  :class:`CpuThreads` looks again while it runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, MutableMapping

__all__ = [
    "HEADLESS_ENVIRONMENT",
    "MODEL_ENVIRONMENT",
    "THREADS_ENV",
    "WINDOW_ENVIRONMENT",
    "CpuThreads",
    "apply_model_environment",
    "busy_elsewhere",
    "configure_torch",
    "quiet_transformers",
    "cpu_threads",
]

MODEL_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}
#: The window's model process (see the module doc): a spin of up to ~0.1 ms.
WINDOW_ENVIRONMENT = {"GOMP_SPINCOUNT": "2000"}
#: A headless parent's model process (see the module doc): libgomp's default spin, ~3 ms.
HEADLESS_ENVIRONMENT = {"GOMP_SPINCOUNT": "300000"}
#: The user's own OpenMP wait settings: where either is set, no spin is added.
_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
#: Threads for one generate() call on the CPU: a number, or "auto" (:func:`cpu_threads`).
THREADS_ENV = "HITL_CPU_THREADS"


def apply_model_environment(
    environ: MutableMapping[str, str] | None = None, *, headless: bool = False
) -> dict[str, str]:
    """Set each of :data:`MODEL_ENVIRONMENT` that is not set yet, and the spin of
    :data:`HEADLESS_ENVIRONMENT` (a ``headless`` parent) or :data:`WINDOW_ENVIRONMENT` where
    the user set no OpenMP wait setting; returns what it set."""
    env = os.environ if environ is None else environ
    ours = not any(name in env for name in _WAIT_SETTINGS)
    spin = (HEADLESS_ENVIRONMENT if headless else WINDOW_ENVIRONMENT) if ours else {}
    wanted = {**MODEL_ENVIRONMENT, **spin}
    added = {k: v for k, v in wanted.items() if k not in env}
    env.update(added)
    return added


def configure_torch() -> None:
    """When a model loads: torch on all cores (its default is the physical ones; a CPU
    generation then picks its own count, :func:`cpu_threads`)."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))


def quiet_transformers() -> None:
    """No tqdm bars of transformers' own (``on_progress`` reports instead): called where a
    model loads through transformers (a model loaded without it never imports it)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def cpu_threads(cores: int | None = None) -> int:
    """Threads for a generation on the CPU: ``HITL_CPU_THREADS`` when set, else the cores
    that other programs leave idle right now (at least one). A decoding step is some 2000
    small parallel regions; a thread that has to wait for a core at each of them makes the
    step several times slower than one thread alone (measured on 2 cores with other
    programs busy: 660 ms per step with 2 threads against 160 ms with 1). The busy cores are
    the runnable tasks of ``/proc/loadavg`` less this process's and its parent's running
    threads (:func:`busy_elsewhere`, median of 3 looks); where it cannot be read, every
    core. The texts do not depend on the number of threads (each row's numbers are computed
    alone, whatever the thread count; checked bit for bit). :class:`CpuThreads` looks again
    while a generation runs."""
    cores = max(1, cores or os.cpu_count() or 1)
    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted and wanted != "auto":
        try:
            return max(1, int(wanted))
        except ValueError:
            pass
    if cores == 1:
        return 1
    looks = []
    for i in range(3):
        if i:
            time.sleep(0.002)
        busy = busy_elsewhere()
        if busy is None:
            return cores
        looks.append(busy)
    return max(1, min(cores, cores - sorted(looks)[1]))


def busy_elsewhere() -> int | None:
    """The tasks running or waiting for a core right now that are neither this process's
    threads nor its parent's (``/proc/loadavg``'s runnable count less the running threads of
    both): a worker of ours still finishing a step is not "busy", nor is the window or the
    command line that started the model process while it takes the tokens just streamed to
    it (it does at every step, right when the next step begins: counted, it made the model
    process drop to one thread, 16 % slower than in-process). None where ``/proc`` cannot tell."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            runnable = int(f.read().split()[3].split("/")[0])
        own = _running_threads("/proc/self/task")
    except (OSError, ValueError, IndexError):
        return None
    parent = os.getppid()
    theirs = _running_threads(f"/proc/{parent}/task") if parent > 1 else 0
    return max(0, runnable - max(1, own) - theirs)


def _running_threads(tasks: str) -> int:
    """How many threads of a process (its ``/proc/PID/task`` folder) are running now."""
    n = 0
    try:
        entries = list(os.scandir(tasks))
    except OSError:
        return 0
    for task in entries:
        try:
            with open(f"{task.path}/stat", encoding="ascii", errors="replace") as f:
                n += f.read().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return n


class CpuThreads:
    """The threads of one generation on the CPU, looked at again while it runs: a program
    busy for a moment when the generation began (the window saving a judgment, the command
    line storing the last prompt's candidates) no longer halves the whole generation, and
    one that starts later gets its core back. :meth:`before_step` looks every
    :data:`EVERY` steps (the median of :data:`LOOKS` looks on consecutive steps, each a
    read of ``/proc``, no waiting) and gives the new count when it changes. ``HITL_CPU_THREADS``
    fixes the count; the texts do not depend on it."""

    EVERY = 16
    LOOKS = 3

    def __init__(self, cores: int | None = None, look: Callable[[], int | None] | None = None) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)
        wanted = os.environ.get(THREADS_ENV, "").strip()
        self.fixed = bool(wanted and wanted != "auto") or self.cores == 1
        self._look = look or busy_elsewhere
        self.threads = cpu_threads(self.cores)
        self._steps = 0
        self._looks: list[int] = []

    def before_step(self) -> int | None:
        """The new thread count when it should change now, else None."""
        if self.fixed:
            return None
        self._steps += 1
        if self._steps < self.EVERY or self._steps % self.EVERY >= self.LOOKS:
            return None
        busy = self._look()
        if busy is None:
            self.fixed = True
            return None
        self._looks.append(busy)
        if len(self._looks) < self.LOOKS:
            return None
        wanted = max(1, min(self.cores, self.cores - sorted(self._looks)[self.LOOKS // 2]))
        self._looks = []
        if wanted == self.threads:
            return None
        self.threads = wanted
        return wanted
