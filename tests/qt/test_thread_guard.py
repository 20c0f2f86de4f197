"""The guard in conftest.py really fails a test that leaks a running QThread."""

from __future__ import annotations

import shutil
from pathlib import Path

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

LEAKY = '''
import time

from PySide6.QtCore import QThread


class Sleeper(QThread):
    def run(self):
        time.sleep(4)


KEEP = []


def test_leaks_a_thread(qtbot):
    t = Sleeper()
    KEEP.append(t)
    t.start()


def test_tidy_thread(qtbot):
    t = Sleeper()
    t.run = lambda: None
    t.start()
    t.wait()


def test_zz_let_the_leaked_thread_end():
    KEEP[0].wait()
'''


def test_a_leaked_qthread_fails_its_test(pytester):
    for name in ("conftest.py", "fakes.py"):
        shutil.copy(HERE / name, pytester.path / name)
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*QThread(s) still running after the test*"])
