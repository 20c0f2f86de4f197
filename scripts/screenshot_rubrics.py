"""Screenshots of the rubric in the app: the tutor's window with a medicine prompt, four
candidates and a seven-criterion rubric partly graded (light and dark), the lead's review with
the rubric proposals, and the Quality dashboard's rubric charts.

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_rubrics.py OUT_DIR

writes OUT_DIR/window-main-light.png (a ranking, no rubric: docs/screenshot.png), window-light.png, window-dark.png (the rubric tab open), window-guidelines-light.png,
review.png, dashboard.png (for looking at; docs/rubric-window.png is window-light.png).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.rubrics import Criterion
from hitl_desktop.core.store import Store
from hitl_desktop.qt import theme
from hitl_desktop.qt.main_window import MainWindow
from hitl_desktop.qt.settings import AppSettings

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/rubric-shots")
out.mkdir(parents=True, exist_ok=True)
tmp = Path(tempfile.mkdtemp())
QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp))
app = QApplication(["shot"])
theme.apply(app, dark=False)

PROMPT = ("I'm 67 with type 2 diabetes. My latest blood test says my eGFR is 27. I take metformin 1 g twice a day "
          "and ibuprofen for my knee. Should I change anything?")
ANSWERS = [
    "With an eGFR of 27, metformin should be stopped: below 30 it can build up and cause lactic acidosis. "
    "Don't stop it on your own without a plan, though; call your GP this week so they can start an alternative "
    "such as a DPP-4 inhibitor (dose-adjusted) or insulin. Also stop the ibuprofen: NSAIDs can worsen kidney "
    "function. Paracetamol is safer for your knee. Seek care urgently if you feel very unwell, breathless or drowsy.",
    "You can keep taking metformin but halve the dose to 500 mg twice a day. Ibuprofen is fine in moderation.",
    "Stop metformin and ibuprofen today. Start insulin at 10 units a day until you see your doctor.",
    "Kidney function of 27 means stage 4 chronic kidney disease. Metformin is generally avoided below 30. "
    "Talk to your doctor about alternatives, and avoid anti-inflammatory painkillers such as ibuprofen.",
]
CRITERIA = [
    ("Advises stopping metformin because eGFR is below 30", 9, "accuracy"),
    ("Explains the lactic acidosis risk in plain words", 4, "communication_quality"),
    ("Advises stopping or avoiding NSAIDs (ibuprofen) with CKD", 6, "accuracy"),
    ("Offers a safer painkiller (paracetamol)", 3, "completeness"),
    ("Says to contact a clinician soon for an alternative diabetes drug", 5, "context_awareness"),
    ("Gives red-flag symptoms that need urgent care", 3, "completeness"),
    ("Starts or doses insulin without a clinician", -8, "accuracy"),
]
GRADED = {0: [1, 1, 1, 1, 1, 1, 0], 1: [0, 0, 0, 0, 0, 0, 0], 2: [1, 0, 1, 0, 0, 0, 1], 3: [1, 0, 1, 0, 1]}

store = Store.open(tmp / "work.db")
src = tmp / "set.jsonl"
src.write_text(json.dumps({"id": "med-031", "prompt": PROMPT, "domain": "medicine", "candidates": ANSWERS}) + "\n"
               + "".join(json.dumps({"id": f"med-0{40 + i}", "prompt": p, "domain": "medicine",
                                     "candidates": ["a", "b", "c"]}) + "\n"
                         for i, p in enumerate(["Is it safe to take St John's wort with sertraline?",
                                                "How long should I wait to drive after cataract surgery?",
                                                "My child has a fever of 39 °C after vaccination. Is that normal?"]))
               , encoding="utf-8")
import_file(store, src)
settings = AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
w = MainWindow(store=store, settings=settings, guidelines=GuidelineLibrary(user_dir=tmp / "g"))
w.resize(1600, 1000)
w.show()
w.start_session(tutor_name="Dr. Amara Osei", domain="medicine")
for _ in range(20):
    app.processEvents()
prompt = store.prompts_by_external_id(["med-031"])["med-031"]
if w.prompt is None or w.prompt.id != prompt.id:
    w.actions.load_prompt(prompt)
# the tutor's bench as most days: a ranking with a tie, a card flagged, no rubric for the prompt yet
w.resize(1440, 900)
b = w.bench
texts = {c.id: c.text for c in w.workflow.item.candidates}
pos = {ANSWERS.index(texts[cid]): n for n, cid in enumerate(b.display_order_ids())}  # answer -> position
b.press_position(pos[0] + 1)  # the full answer, then the short correct one, then the two wrong ones tied
b.press_position(pos[3] + 1)
b.press_position(pos[1] + 1)
b.press_tie()
b.press_position(pos[2] + 1)
b.select(pos[1])
b.toggle_flag_selected("incorrect")
b.select(pos[2])
b.toggle_flag_selected("unsafe")
b.select(pos[0])
for _ in range(30):
    app.processEvents()
w.grab().save(str(out / "window-main-light.png"))
b.clear_all()
for i, flag in ((1, "incorrect"), (2, "unsafe")):
    b.select(pos[i])
    b.toggle_flag_selected(flag)
w.resize(1600, 1000)
rb = w.rubric_bench
rb.save_rubric([Criterion(t, p, [f"axis:{a}"]) for t, p, a in CRITERIA])
by_text = {c.text: c.id for c in w.workflow.item.candidates}
for i, mets in GRADED.items():
    for crit, m in zip(rb.criteria, mets, strict=False):
        rb.set_grade(by_text[ANSWERS[i]], crit.id, bool(m))
w.rubrics.toggle_grid_focus()  # the grid, and the card of its column selected
for _ in range(30):
    app.processEvents()
w.grab().save(str(out / "window-guidelines-light.png"))
w.rubrics.side.setCurrentWidget(w.rubrics.panel_frame)
if not w.rubrics.grid.view.hasFocus():
    w.rubrics.toggle_grid_focus()
for _ in range(30):
    app.processEvents()
w.grab().save(str(out / "window-light.png"))
w.lab_menus.set_theme("dark")
for _ in range(30):
    app.processEvents()
w.grab().save(str(out / "window-dark.png"))
w.lab_menus.set_theme("light")

# the lead's view: other tutors' proposals and grades of the same prompt
store.rubrics.save_rubric(prompt.id, [Criterion(t, p, [f"axis:{a}"]) for t, p, a in CRITERIA[:5]], author="Dr. Chen Wei")
store.rubrics.save_rubric(prompt.id, [Criterion(t, p, [f"axis:{a}"]) for t, p, a in CRITERIA[1:]], author="Dr. Okafor")
grades = tmp / "grades.jsonl"
rows = []
for tutor, flip in (("Dr. Chen Wei", {1, 4}), ("Dr. Okafor", {3})):
    for i in range(4):
        mets = (GRADED[i] + [0] * 7)[:7]
        rows.append({"prompt_id": "med-031", "completion": ANSWERS[i], "grader": tutor, "grader_kind": "tutor",
                     "rubric_version": 1,
                     "grades": [{"criterion": c[0], "criteria_met": bool(m) != (k in flip and i % 2 == 0)}
                                for k, (c, m) in enumerate(zip(CRITERIA, mets, strict=True))]})
for i in range(4):
    rows.append({"prompt_id": "med-031", "completion": ANSWERS[i], "grader": "gpt-grader", "grader_kind": "model",
                 "rubric_version": 1, "grades": [{"criterion": c[0], "criteria_met": k < 2 or bool(GRADED[i][k:k + 1] == [1])}
                                                 for k, c in enumerate(CRITERIA)]})
grades.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
import_file(store, grades)
w.lab_menus.lead_action.setChecked(True)
w.lab_menus.open_review()
v = w.lab_menus.review_view
v.resize(1380, 860)
v.detail_tabs.setCurrentWidget(v.rubric_review)
v.rubric_review.show_prompt(prompt.id)
v.rubric_review.runner.wait(10000)
for _ in range(40):
    app.processEvents()
v.rubric_review.proposal_view.selectRow(1)
for _ in range(10):
    app.processEvents()
v.grab().save(str(out / "review.png"))
w.open_quality_dashboard()
d = w.dashboard
d.resize(1380, 980)
d.wait_for_workers(10000)
for _ in range(40):
    app.processEvents()
d.grab().save(str(out / "dashboard.png"))
print("written", sorted(p.name for p in out.iterdir()))
v.rubric_review.close_runner()
w.close()
