"""Makes docs/review.png: the review of disagreements with four prompts judged by several
tutors (flags, a correction, one prompt adjudicated), in a real X window.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/screenshot_review.py docs/review.png
"""
import json
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store
from hitl_desktop.qt import theme
from hitl_desktop.qt.main_window import MainWindow
from hitl_desktop.qt.settings import AppSettings

tmp = Path(tempfile.mkdtemp())
QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp))
app = QApplication(["shot"])
theme.apply(app)

store = Store.open(tmp / "r.db")
W = ["Avoid ibuprofen: NSAIDs with warfarin raise bleeding risk (GI bleeding, and they affect platelets). Paracetamol up to 3 g/day is the usual first choice; check the INR if it is used regularly.",
     "Ibuprofen is fine at low doses for a few days; warfarin is not affected.",
     "Use topical diclofenac instead of oral NSAIDs, and talk to the anticoagulation clinic.",
     "Take ibuprofen with food to protect the stomach."]
recs = []


def add(i, prompt, dom, cands, ranks, **extra):
    for tutor, r in ranks.items():
        rec = {"id": i, "prompt": prompt, "domain": dom, "candidates": cands, "ranking": r, "tutor": tutor}
        rec.update(extra.get(tutor, {}))
        recs.append(rec)


add("med-014", "A 68-year-old on warfarin asks whether ibuprofen is fine for knee pain.", "medicine", W,
    {"dr-amara": [1, 4, 2, 3], "dr-chen": [2, 1, 3, 4], "dr-okafor": [1, 3, 2, 3]},
    **{"dr-amara": {"flags": [[], ["unsafe", "incorrect"], [], []], "rationale": "B misses the bleeding risk."},
       "dr-chen": {"flags": [[], [], [], ["incomplete"]], "rationale": "B is short but answers the question."},
       "dr-okafor": {"correction": W[0] + " Topical NSAIDs are a reasonable option for knee pain.", "corrected_index": 0}})
add("fin-003", "Is a 30-year fixed mortgage better than a 15-year one for a first-time buyer with an irregular income?", "finance",
    ["A 30-year loan keeps the monthly payment low, which matters with an irregular income; overpay in good months.",
     "Always take the 15-year loan: you pay far less interest.", "It depends on rates; compare the total cost.", "Rent instead."],
    {"ana-lopez": [1, 4, 2, 3], "ben-ito": [3, 1, 2, 4]})
add("med-021", "Can a patient on an SSRI take tramadol for post-operative pain?", "medicine",
    ["Tramadol with an SSRI risks serotonin syndrome and lowers the seizure threshold; prefer another analgesic.",
     "Yes, there is no interaction.", "Only at half the dose.", "Yes, but watch for nausea."],
    {"dr-amara": [1, 4, 2, 3], "dr-chen": [1, 4, 3, 2], "dr-okafor": [2, 4, 1, 3]})
add("med-007", "When should metformin be stopped before a CT scan with iodinated contrast in a patient with an eGFR of 35?", "medicine",
    ["Withhold metformin at the time of the scan and for 48 hours after, restarting once kidney function is rechecked.",
     "Never stop metformin.", "Stop it a week before.", "Halve the dose on the day."],
    {"dr-amara": [1, 4, 3, 2], "dr-chen": [1, 4, 2, 3], "dr-okafor": [1, 4, 3, 2]})
f = tmp / "lab.jsonl"
f.write_text("".join(json.dumps(r) + "\n" for r in recs))
import_file(store, f)
s = AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
w = MainWindow(store=store, settings=s, guidelines=GuidelineLibrary(user_dir=tmp / "g"))
w.start_session(tutor_name="lead-rivera", domain="medicine")
w.lab_menus.lead_action.setChecked(True)
w.lab_menus.open_review()
v = w.lab_menus.review_view
v.resize(int(sys.argv[2]) if len(sys.argv) > 2 else 1380, 820)


def select(ext):
    rows = (v.list_model.row(i).prompt for i in range(v.list_model.rowCount()))
    v.select_prompt(next(p.id for p in rows if p.external_id == ext))


select("med-007")  # one prompt adjudicated already: its row shows the ✓
v.rationale_edit.setPlainText("All three put the 48-hour rule first; A is the guideline answer.")
v.record_button.click()
for _ in range(10):
    app.processEvents()
select("med-014")
v.rationale_edit.setPlainText("A is safe and complete, and Dr Okafor's correction adds the topical option; B misses the bleeding risk.")
for _ in range(30):
    app.processEvents()
h = v.list_view.horizontalHeader()
print("list widths", [h.sectionSize(i) for i in range(h.count())], "viewport", v.list_view.viewport().width())
g = v.grid_view.horizontalHeader()
print("grid widths", [g.sectionSize(i) for i in range(g.count())], "viewport", v.grid_view.viewport().width())
v.grab().save(sys.argv[1])
