"""A child process for the crash and concurrency tests (run as a script, killed at will).

    python writer.py judge DB TUTOR COUNT   save COUNT judgments one by one as TUTOR, printing
                                            each judgment id only after save_judgment returned
    python writer.py import DB FILE         import FILE (all or nothing), then print "done"

Prints "ready" once the store is open. Each line is flushed at once, so what the parent
reads is exactly what was acknowledged before the process died.
"""

from __future__ import annotations

import sys

# sqlite-utils imports pandas and numpy when they are installed (0.5 s); nothing here needs
# them, and a quick start lets the tests kill many writers in little time.
sys.modules.setdefault("pandas", None)  # type: ignore[arg-type]
sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def judge(db: str, tutor_name: str, count: int) -> None:
    from hitl_desktop.core.store import Store
    from hitl_desktop.core.types import Judgment

    store = Store.open(db)
    tutor = store.ensure_tutor(tutor_name)
    prompts = store.queued_prompts(tutor_id=tutor.id, limit=count)
    say("ready")
    for n, prompt in enumerate(prompts):
        cands = store.candidates_for(prompt.id)
        ids = [c.id for c in cands]
        ranks = {cid: (i + n) % len(ids) + 1 for i, cid in enumerate(ids)}
        judgment = Judgment(
            prompt_id=prompt.id,
            tutor_id=tutor.id,
            ranks=ranks,
            display_order=ids,
            rationale=f"judgment {n} by {tutor_name}",
        )
        store.save_judgment(judgment)
        say(judgment.id)
    store.close()
    say("finished")


def import_(db: str, path: str) -> None:
    from hitl_desktop.core.importing import import_file
    from hitl_desktop.core.store import Store

    store = Store.open(db)
    say("ready")
    import_file(store, path)
    say("done")
    store.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "judge":
        judge(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "import":
        import_(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode}")
