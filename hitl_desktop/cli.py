"""The command line: a thin shell over ``hitl_desktop.core`` (like sqlite_utils/cli.py).

``hitl-desktop`` with no command opens the app. Every command exits 0 on success and
non-zero with a one-line reason on stderr for bad input, leaving the database unchanged; a
refused import file lists its bad lines under that line. Any other error (a bug) is one line
too, its traceback kept in the log (core/errors.py); ``--debug`` or ``HITL_DEBUG=1`` prints it.
The catch-all is in one place: the group's own ``invoke`` (``cli_errors.Commands``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hitl_desktop import cli_errors
from hitl_desktop.cli_errors import Commands, Refused, Unexpected, import_refused, unexpected
from hitl_desktop.cli_errors import one_line as _one_line
from hitl_desktop.core.wording import count, counted

if TYPE_CHECKING:
    from hitl_desktop.core.store import Store

DB_HELP = "The database file (default: hitl-desktop.db in the user data folder)."
MODEL_HELP = "A local Hugging Face model folder or .gguf file (default: the embedded Gemma 3 270M)."
#: The export formats, for --help without importing the export module (a test keeps it in step).
EXPORT_FORMATS = "trl-preference, trl-preference-chat, hh-rlhf, ultrafeedback, nectar, kto, sft, judgments"
#: The import layouts, likewise (core/layouts.py LAYOUTS).
IMPORT_LAYOUTS = "records, judgments, trl-preference, trl-preference-chat, hh-rlhf, ultrafeedback, nectar"


def _store_module():
    """``hitl_desktop.core.store``, imported on first use so that ``--help`` stays instant
    (sqlite-utils is imported without pandas, see core/sqlitelib.py)."""
    from hitl_desktop.core import store

    return store


def _db(db_path: str | None) -> str | None:
    """The command's --db, else the one given before the command (``hitl-desktop --db X stats``)."""
    if db_path is None:
        db_path = click.get_current_context().find_root().params.get("db_path")
    return db_path


def _open_store(db: str | None, *, create: bool = True, read_only: bool = False) -> Store:
    store = _store_module()
    try:
        return store.Store.open(db, create=create, read_only=read_only)
    except store.StoreError as e:
        raise click.ClickException(str(e)) from None


def _db_file(db_path: str | None) -> Path:
    return Path(db_path) if db_path else _store_module().default_db_path()


@click.group(cls=Commands, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--model", "model_path", type=click.Path(), default=None, help=MODEL_HELP)
@click.option("--debug", is_flag=True, help="Print the traceback of an unexpected error (also HITL_DEBUG=1).")
@click.version_option(package_name="hitl-desktop")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, model_path: str | None, debug: bool) -> None:
    """A bench for specialist tutors: rank, flag and correct a local model's answers, and
    export them as reward-model training pairs.

    With no command, opens the app. --db and --model given here also apply to the command
    that follows (hitl-desktop --db med.db stats).
    """
    if ctx.invoked_subcommand is not None:
        return
    if db_path is not None:
        # Refuse a foreign file here, before any window, with the same one-line message.
        _open_store(db_path).close()
    from hitl_desktop.app import run

    ctx.exit(run(db_path=db_path, model_path=model_path, argv=sys.argv[:1]))


@cli.command("import", short_help="Import prompts and judgments (JSONL or CSV), all or nothing.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--domain", default=None, help="Domain for records that name none.")
@click.option("--tutor", default="imported", show_default=True, help="Tutor for rankings that name none.")
@click.option("--format", "layout", default=None, metavar="LAYOUT", help=f"The file's layout (default: found from its fields): {IMPORT_LAYOUTS}, rubrics, rubric-grades.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_command(file: str, db_path: str | None, domain: str | None, tutor: str, layout: str | None, as_json: bool) -> None:
    """Import prompts (and finished judgments) from a JSONL or CSV file, all or nothing.

    A bad line refuses the whole file; the error names the first bad line and counts the others.
    """
    from hitl_desktop.core import operations
    from hitl_desktop.core.importing import ImportFileError

    db, size = _db(db_path), Path(file).stat().st_size
    try:
        if size < 4_000_000:  # a progress bar only for files large enough to take a moment
            summary = operations.import_file(db, file, domain=domain, tutor=tutor, layout=layout, create=True)
        else:
            with click.progressbar(length=size, label="Reading", file=sys.stderr) as bar:
                last = [0]

                def progress(fraction: float, _message: str) -> None:
                    done = int(fraction * size)
                    bar.update(done - last[0])
                    last[0] = done

                summary = operations.import_file(db, file, domain=domain, tutor=tutor, layout=layout, progress=progress, create=True)
    except ImportFileError as e:
        raise import_refused(e) from None
    except _store_module().StoreError as e:
        raise click.ClickException(f"{file}: {e}; nothing was imported") from None
    if as_json:
        click.echo(json.dumps(summary.__dict__, ensure_ascii=False))
    else:
        click.echo(
            f"Imported {count(summary.records, 'record')} from {file}: {count(summary.prompts, 'new prompt')}"
            f" ({summary.prompts_reused} already there), {count(summary.candidates, 'candidate')},"
            f" {count(summary.judgments, 'judgment')} ({summary.corrections} with a correction,"
            f" {summary.judgments_skipped} already there), {summary.queued} queued."
        )
        if summary.corrections_ignored:
            click.echo(f"  {count(summary.corrections_ignored, 'unchanged correction')} ignored.")
        if summary.fields_not_kept:
            kept = ", ".join(f"{k} ({count(n, 'row')})" for k, n in summary.fields_not_kept.items())
            click.echo(f"  Fields with no place in a judgment, not kept: {kept}.")


class _LoadProgress:
    """Model loading progress on stderr: one line redrawn in a terminal, else one line per step."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.width = 0
        self.last = ""

    def __call__(self, fraction: float, message: str) -> None:
        if self.tty:
            line = f"{message} {fraction:4.0%}"
            click.echo("\r" + line.ljust(self.width), nl=False, err=True)
            self.width = max(self.width, len(line))
        elif message != self.last:
            click.echo(message, err=True)
        self.last = message

    def done(self) -> None:
        if self.tty and self.width:
            click.echo("", err=True)


@cli.command("generate", short_help="Write K candidates for every queued prompt.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--model", "model_path", type=click.Path(), multiple=True, help=MODEL_HELP + " Or a served model's URL, http(s)://HOST:PORT/v1. Repeat it to compare several models: the K candidates are shared among them.")
@click.option("--served-model", default=None, metavar="NAME", help="The model to use on a server that serves several (URL#NAME names it for one URL).")
@click.option("--completions", is_flag=True, help="Served base models without a chat template: plain completions of a User:/Assistant: transcript.")
@click.option("-k", "k", type=click.IntRange(2, 9), metavar="N", default=4, show_default=True, help="Candidates per prompt.")
@click.option("--max-concurrency", type=click.IntRange(min=1), metavar="N", default=None, help="Served models: at most N streams at once to one server (default: K). Streams a server cuts short are retried one at a time.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", default=None, help="At most this many prompts.")
@click.option("--domain", default=None, help="Only prompts of this domain.")
@click.option("--max-new-tokens", type=click.IntRange(1, 8192), metavar="N", default=256, show_default=True, help="Longest answer, in tokens.")
@click.option("--temperature", type=click.FloatRange(0.0, 5.0), metavar="T", default=0.8, show_default=True, help="0 = greedy.")
@click.option("--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), metavar="P", default=0.95, show_default=True, help="Nucleus sampling.")
@click.option("--seed", type=int, metavar="N", default=0, show_default=True, help="Base seed; each candidate gets its own seed from it.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line: candidates, tokens, seconds.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps (auto: the GPU when there is one).")
def generate_command(
    db_path: str | None,
    model_path: tuple[str, ...],
    served_model: str | None,
    completions: bool,
    k: int,
    max_concurrency: int | None,
    limit: int | None,
    domain: str | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    as_json: bool,
    device: str,
) -> None:
    """Write K candidates for each queued prompt that has none (pre-generation, no window).

    Each prompt's candidates are saved as soon as they are written; Ctrl+C stops after the
    current decoding step (the prompt being written is left for later).
    """
    device = _check_device(device)
    store = _open_store(_db(db_path))
    specs = list(model_path) or [click.get_current_context().find_root().params.get("model_path")]
    try:
        todo = len(store.queued_prompts(domain=domain, without_candidates=True, limit=limit))
        if todo == 0:
            from hitl_desktop.core.backends.served import is_url

            for spec in specs:  # a bad --model is still an error, found without loading
                if spec is not None and not is_url(spec):
                    _check_model(spec)
            click.echo("No queued prompt without candidates: nothing to do.", err=True)
            summary, model = None, None
        else:
            summary, model = _generate(
                store, specs, todo, k=k, limit=limit, domain=domain, seed=seed,
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                served_model=served_model, completions=completions, device=device,
                max_concurrency=max_concurrency,
            )
    finally:
        store.close()
    line = {
        "prompts": summary.prompts if summary else 0,
        "candidates": summary.candidates if summary else 0,
        "tokens": summary.tokens if summary else 0,
        "seconds": round(summary.seconds, 3) if summary else 0.0,
        "tokens_per_second": round(summary.tokens_per_second, 2) if summary else 0.0,
        "skipped": len(summary.skipped) if summary else 0,
        "retried": summary.retried if summary else 0,
        "stopped": bool(summary and summary.stopped),
        "model": model,
    }
    if as_json:
        click.echo(json.dumps(line))
    elif summary:
        stopped = " Stopped early." if summary.stopped else ""
        if summary.skipped:
            stopped = f" Skipped {count(len(summary.skipped), 'prompt')} the model refused.{stopped}"
        if summary.retried:
            stopped = (
                f" {count(summary.retried, 'candidate')} cut short by the server, written again "
                f"one request at a time.{stopped}"
            )
        click.echo(
            f"Wrote {count(summary.candidates, 'candidate')} for {count(summary.prompts, 'prompt')}: "
            f"{summary.tokens} tokens in {summary.seconds:.1f} s "
            f"({summary.tokens_per_second:.1f} tok/s).{stopped}"
        )
    if summary and summary.stopped:
        click.get_current_context().exit(130)


def _check_model(model_path: str) -> None:
    from hitl_desktop.core.backends.base import ModelError
    from hitl_desktop.core.backends.model_files import check_model_path

    try:
        check_model_path(model_path)
    except ModelError as e:
        raise click.ClickException(str(e)) from None


def _check_device(device: str) -> str:
    from hitl_desktop.core.backends.base import ModelError
    from hitl_desktop.core.backends.devices import check_device_name

    try:
        return check_device_name(device)
    except ModelError as e:
        raise click.BadParameter(str(e), param_hint="--device") from None


def _generate(store, specs, todo, *, device, served_model=None, completions=False, max_concurrency=None, **options):  # noqa: ANN001, ANN003, ANN202, E501
    """Open the model(s) (a local one in the generation process, the app's engine; a served one
    over HTTP), fill the queue, close them."""
    from hitl_desktop.core.backends.base import ModelError
    from hitl_desktop.core.backends.registry import open_backend

    progress = _LoadProgress()
    try:
        backend = open_backend(
            specs, device=device, on_progress=progress, served_model=served_model, completions=completions,
            max_concurrency=max_concurrency, on_status=_status_line, headless=True,
        )
    except ModelError as e:
        raise click.ClickException(str(e)) from None
    finally:
        progress.done()
    try:
        return _fill(store, backend, todo, **options)
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def _status_line(message: str) -> None:
    """A backend's word while it generates (a served model's retry), on its own stderr line."""
    click.echo(("\n" if sys.stderr.isatty() else "") + message, err=True)


def _fill(store, backend, todo, *, k, limit, domain, seed, max_new_tokens, temperature, top_p):  # noqa: ANN001, ANN202
    """Fill the queue; Ctrl+C asks the backend to stop within one step."""
    import signal

    from hitl_desktop.core.backends.base import ModelError, SamplingParams
    from hitl_desktop.core.engine import fill_queue

    interrupted: list[bool] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    except ValueError:  # not the main thread: no handler of our own
        previous = None
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)

    def skipped(prompt, reason: str) -> None:  # noqa: ANN001
        newline = "\n" if sys.stderr.isatty() else ""  # off the progress bar's line
        click.echo(f"{newline}Skipped prompt {prompt.external_id or prompt.id}: {reason}", err=True)

    try:
        with click.progressbar(
            length=todo, label=f"Generating with {backend.name}", show_pos=True, file=sys.stderr
        ) as bar:
            summary = fill_queue(
                store,
                backend,
                k=k,
                params=params,
                base_seed=seed,
                limit=limit,
                domain=domain,
                on_prompt_done=lambda n, total, result: bar.update(1),
                on_prompt_skipped=lambda prompt, reason: (bar.update(1), skipped(prompt, reason)),
                should_stop=lambda: bool(interrupted),
            )
    except ModelError as e:
        raise click.ClickException(f"generation failed: {e}") from None
    except (RuntimeError, MemoryError) as e:  # torch's errors; what was written so far is saved
        raise click.ClickException(
            f"generation failed with {backend.name} ({type(e).__name__}: {e}); "
            "the candidates written so far are saved"
        ) from None
    except _store_module().StoreError as e:
        raise click.ClickException(f"{e}; the candidates written so far are saved") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if summary.skipped and not summary.prompts and not summary.stopped:
        raise click.ClickException(f"no prompt could be generated: {summary.skipped[0][1]}")
    return summary, backend.name


@cli.command("export", short_help="Export judgments as training data.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--format", "fmt", required=True, metavar="FORMAT", help=f"One of: {EXPORT_FORMATS}, rubrics, rubric-grades.")
@click.option("--out", required=True, type=click.Path(), help="Output: NAME.jsonl, NAME.parquet, or a folder (datasets save_to_disk).")
@click.option("--domain", default=None, help="Only this domain.")
@click.option("--tutor", default=None, help="Only this tutor (by name).")
@click.option("--since", default=None, help="Only judgments at or after this ISO date/time (UTC).")
@click.option("--until", default=None, help="Only judgments before this ISO date/time (UTC).")
@click.option("--test-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), metavar="X", default=0.0, show_default=True, help="Share of prompts in the test split.")
@click.option("--seed", type=int, metavar="N", default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--keep-tutor-names", is_flag=True, help="Write tutor names as they are (default: pseudonyms).")
@click.option("--include-top-ranked", is_flag=True, help="sft: also the top-ranked answers, not only corrections.")
@click.option("--consensus", is_flag=True, help="Where several tutors judged a prompt: its majority pairs (nectar: a ranking consistent with them); each tutor's correction still counts.")
@click.option("--adjudicated", is_flag=True, help="A lead's adjudicated ranking where there is one (per-tutor or --consensus elsewhere).")
@click.option("--grades-from", default=None, metavar="GRADER", help="rubric-grades: that grader's grades (a model or a tutor), not the tutors'.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_command(
    db_path: str | None,
    fmt: str,
    out: str,
    domain: str | None,
    tutor: str | None,
    since: str | None,
    until: str | None,
    test_fraction: float,
    seed: int,
    keep_tutor_names: bool,
    include_top_ranked: bool,
    consensus: bool,
    adjudicated: bool,
    grades_from: str | None,
    as_json: bool,
) -> None:
    """Export judgments as training data (preference pairs and other formats)."""
    from hitl_desktop.core import export
    from hitl_desktop.core.rubric_export import RUBRIC_FORMATS

    if fmt not in export.FORMATS and fmt not in RUBRIC_FORMATS:
        raise click.ClickException(f"unknown format {fmt!r}; formats: {', '.join(export.FORMATS + RUBRIC_FORMATS)}")
    from hitl_desktop.core import operations

    try:  # the database is only read (operations.open_for_reading: the integrity check first)
        summary = operations.export(
            _db(db_path),
            fmt=fmt,
            out=out,
            consensus=consensus,
            adjudicated=adjudicated,
            domain=domain,
            tutor=tutor,
            since=since,
            until=until,
            test_fraction=test_fraction,
            seed=seed,
            keep_tutor_names=keep_tutor_names,
            include_top_ranked=include_top_ranked,
            **({"grades_from": grades_from} if grades_from else {}),
        )
    except export.ExportError as e:
        raise click.ClickException(str(e)) from None
    except _store_module().StoreError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        d = dict(summary.__dict__)
        d["out"] = str(d["out"])
        d["files"] = [str(f) for f in d["files"]]
        click.echo(json.dumps(d))
    else:
        split = f" (train {summary.train_rows}, test {summary.test_rows})" if test_fraction else ""
        click.echo(
            f"Wrote {count(summary.rows, f'{fmt} row')}{split} from {count(summary.judgments, 'judgment')} of "
            f"{count(summary.prompts, 'prompt')} to {', '.join(str(f) for f in summary.files)}."
        )
        for line in [summary.dropped_text(), *summary.notes]:
            if line:
                click.echo(f"  {line[0].upper()}{line[1:]}.")


@cli.command("grade", short_help="Grade candidates against their rubrics with a model.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--grader", required=True, metavar="MODEL|URL", help="A local model folder, or an OpenAI-compatible server's URL.")
@click.option("--served-model", default=None, metavar="NAME", help="The served model to use (a server serving several).")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="At most N candidates.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N", help="Requests at a time (served: 16; a local model: 1).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line {grader, graded, ungraded, seconds}.")
def grade_command(db_path: str | None, grader: str, served_model: str | None, limit: int | None,
                  workers: int | None, as_json: bool) -> None:
    """Grade every (candidate, criterion) the grader has not graded yet (HealthBench's grader
    request); a reply that is not the JSON asked for is asked again once, then left ungraded."""
    from hitl_desktop.core.backends.base import ModelError
    from hitl_desktop.core.backends.registry import open_backend
    from hitl_desktop.core.backends.served import is_url
    from hitl_desktop.core.grading import DEFAULT_WORKERS, grade_store

    store = _open_store(_db(db_path), create=False)
    try:
        try:
            backend = open_backend(grader, served_model=served_model, headless=True)
        except ModelError as e:
            raise click.ClickException(f"grader {grader}: {e}; nothing was graded") from None
        try:
            served = is_url(grader)
            summary = grade_store(store, backend, limit=limit,
                                  workers=workers or (DEFAULT_WORKERS if served else 1),
                                  provenance={"grader": grader.split("#")[0] if served else grader})
        finally:
            backend.close()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(summary.line()))
    else:
        click.echo(f"Graded {count(summary.graded, 'criterion', 'criteria')} of {count(summary.candidates, 'candidate')} with "
                   f"{summary.grader} in {summary.seconds:.1f} s; {summary.ungraded} ungraded.")


@cli.command("stats", short_help="Counts per domain, and agreement between tutors.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def stats_command(db_path: str | None, as_json: bool) -> None:
    """Counts of prompts, candidates, judgments, pairs and tutors, per domain; agreement."""
    db_path = _db(db_path)
    store = _open_store(db_path, create=False, read_only=True)  # writes nothing
    try:
        from hitl_desktop.core.lab_stats import lab_stats

        stats = lab_stats(store)  # SQL counts and one pass a prompt at a time: flat memory
        from hitl_desktop.core.rubric_agreement import rubric_stats

        stats["rubrics"] = rubric_stats(store)  # agreement on criteria, model graders (SQL aggregates)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(stats, ensure_ascii=False))
        return
    click.echo(_stats_text(stats, _db_file(db_path)))


def _stats_text(stats: dict, db: Path) -> str:
    lines = [f"Database: {db}", ""]
    for key in ("prompts", "queued", "candidates", "judgments", "corrections", "pairs", "tutors"):
        lines.append(f"  {key:<12}{stats.get(key, 0):>10,}")
    domains = stats.get("domains") or {}
    if domains:
        width = max(14, *(len(name) + 2 for name in domains))
        lines += ["", f"  {'domain':<{width}}{'prompts':>9}{'judged':>9}{'pairs':>9}{'tutors':>8}"]
        for name, d in sorted(domains.items()):
            lines.append(
                f"  {name:<{width}}{d.get('prompts', 0):>9,}{d.get('judgments', 0):>9,}"
                f"{d.get('pairs', 0):>9,}{d.get('tutors', 0):>8,}"
            )
    for why, n in (stats.get("dropped") or {}).items():
        lines.append(f"  left out: {counted(n, why)}")
    agreement = stats.get("agreement")
    if agreement and agreement.get("units"):
        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        lines += [
            "",
            f"  agreement   Krippendorff alpha {num(agreement.get('krippendorff_alpha'))}, "
            f"Kendall tau {num(agreement.get('kendall_tau'))} "
            f"({count(agreement.get('units', 0), 'unit')} judged by several tutors)",
        ]
    lines += _models_text(stats.get("models") or {})
    from hitl_desktop.core.rubric_agreement import rubric_stats_text

    lines += rubric_stats_text(stats.get("rubrics") or {})  # rubcore
    return "\n".join(lines)


def _models_text(models: dict) -> list[str]:
    """Checkpoints compared: one line per model, strongest first."""
    if not models:
        return []
    width = max(14, *(len(name) + 2 for name in models))
    lines = ["", f"  {'model':<{width}}{'compared':>9}{'win rate':>9}{'BT':>8}  95% interval"]
    for name, m in models.items():
        rate = "n/a" if m["win_rate"] is None else f"{m['win_rate']:.0%}"
        ci = f"{m['ci95'][0]:.0f}-{m['ci95'][1]:.0f}" if m["ci95"] else "n/a"
        lines.append(f"  {name:<{width}}{m['comparisons']:>9,}{rate:>9}{m['bradley_terry']:>8.0f}  {ci}")
    return lines


@cli.command("merge", short_help="Merge other workstations' databases into this one.")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def merge_command(sources: tuple[str, ...], db_path: str | None, as_json: bool) -> None:
    """Bring other workstations' databases into this one (no duplicates; safe to repeat)."""
    from hitl_desktop.core import operations

    try:
        summary = operations.merge(_db(db_path), list(sources), create=True)
    except _store_module().StoreError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict(), default=str))
    else:
        click.echo(str(summary))


@cli.command("assign", short_help="Write one work pack per tutor from the lab's database.")
@click.option("--db", "db_path", type=click.Path(), default=None, help="The lab's database (only read).")
@click.option("--tutors", required=True, help="Comma-separated tutor names: one pack DIR/<tutor>.db each.")
@click.option("--overlap", type=click.IntRange(min=1), metavar="N", default=2, show_default=True, help="Tutors per (non-gold) prompt.")
@click.option("--domain", default=None, help="Only prompts of this domain.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", default=None, help="At most this many (non-gold) prompts.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the packs.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def assign_command(
    db_path: str | None, tutors: str, overlap: int, domain: str | None, limit: int | None, out_dir: str, as_json: bool
) -> None:
    """Share the lab's prompts out: each to --overlap tutors, every gold prompt to all (without
    its answer key), with the lab's candidates and guidelines. Deterministic; after packs came
    back (merge), assigning again gives the remaining work only."""
    from hitl_desktop.core import operations

    try:
        summary = operations.assign(_db(db_path), tutors=tutors.split(","), out_dir=out_dir, overlap=overlap, domain=domain, limit=limit)
    except _store_module().StoreError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps({
            "overlap": summary.overlap,
            "short": summary.short,
            "packs": [
                {"tutor": p.tutor, "path": str(p.path), "prompts": len(p.prompts), "gold": len(p.gold), "candidates": p.candidates}
                for p in summary.packs
            ],
        }))
    else:
        click.echo(str(summary)[0].upper() + str(summary)[1:] + ".")


@cli.command("backup", short_help="Copy the database to a backup file.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the backup to this new file (default: the rolling backups folder next to the database).")
def backup_command(db_path: str | None, out: str | None) -> None:
    """Copy the database (consistently, even while it is in use) to a backup file."""
    from hitl_desktop.core import operations

    db = _db_file(_db(db_path))
    try:
        path = operations.backup(db, reason="manual", out=out)
    except _store_module().StoreError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Backed up {db} to {path}.")


@cli.command("restore", short_help="Replace the database with a backup.")
@click.argument("backup_file", required=False, type=click.Path(dir_okay=False))
@click.option("--latest", is_flag=True, help="Restore the newest backup that passes the integrity check.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
def restore_command(backup_file: str | None, latest: bool, db_path: str | None) -> None:
    """Replace the database with a backup (the current one is kept as a backup first).

    Close every hitl-desktop window using the database before restoring."""
    from hitl_desktop.core import operations

    if (backup_file is None) == (not latest):
        raise click.UsageError("give either a BACKUP file or --latest")
    db = _db_file(_db(db_path))
    try:
        used, saved = operations.restore(db, None if latest else backup_file)
    except _store_module().StoreError as e:
        raise click.ClickException(str(e)) from None
    kept = f"; the database it replaced was saved as {saved}" if saved else ""
    click.echo(f"Restored {db} from {used}{kept}.")


@cli.command("review", short_help="Prompts tutors disagree on, most disagreement first.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--domain", default=None, help="Only this domain.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", default=None, help="At most this many prompts.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def review_command(db_path: str | None, domain: str | None, limit: int | None, as_json: bool) -> None:
    """Prompts ranked by two or more tutors, lowest mean Kendall tau-b between them first."""
    from hitl_desktop.core import operations

    try:  # writes nothing
        found = operations.review(_db(db_path), domain=domain, limit=limit)
    except _store_module().StoreError as e:
        raise click.ClickException(str(e)) from None
    for d in found:
        row = {"prompt": d.prompt.external_id or d.prompt.id, "domain": d.domain, "tutors": list(d.tutors),
               "mean_tau": d.mean_tau, "min_tau": d.min_tau, "adjudicated": d.adjudicated, "text": d.prompt.text}  # fmt: skip
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            tau = "  n/a" if d.mean_tau is None else f"{d.mean_tau:+.2f}"
            done = " adjudicated" if d.adjudicated else ""
            click.echo(f"{tau}  {row['prompt']}  [{d.domain}, {len(d.tutors)} tutors{done}]  {' '.join(d.prompt.text.split())[:70]}")


@cli.command("adjudicate", short_help="Record a lead's ranking of a prompt (supersedes an earlier one).")
@click.argument("prompt")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--ranking", required=True, metavar="R1,R2,...", help="One rank per candidate in generated order, 1 = best, ties allowed.")
@click.option("--rationale", required=True, help="Why this ranking.")
@click.option("--adjudicator", required=True, help="The lead's name.")
def adjudicate_command(prompt: str, db_path: str | None, ranking: str, rationale: str, adjudicator: str) -> None:
    """Record the adjudicated ranking of PROMPT (its imported id, or its prompt id)."""
    from hitl_desktop.core import review

    try:
        ranks: list[object] = [int(r) for r in ranking.split(",")]
    except ValueError:
        raise click.ClickException(f"--ranking: {ranking!r} is not a comma-separated list of ranks") from None
    from hitl_desktop.core import operations

    try:
        a = operations.adjudicate(_db(db_path), prompt=prompt, ranking=ranks, rationale=rationale, adjudicator=adjudicator)
    except (review.ReviewError, _store_module().StoreError) as e:
        raise click.ClickException(f"{prompt}: {e}; nothing was recorded") from None
    click.echo(f"Recorded {adjudicator}'s adjudication of {prompt} ({a.id}).")


def main(argv: list[str] | None = None) -> int:
    """The ``hitl-desktop`` entry point: the exit code; any error is one line on stderr (a
    refused file's bad lines follow it, one line each)."""
    cli_errors.ARGV = argv
    if any("\x00" in arg for arg in (sys.argv[1:] if argv is None else argv)):
        click.echo("Error: an argument holds a NUL character", err=True)  # no shell can pass one
        return 2
    try:
        try:
            rv = cli.main(args=argv, prog_name="hitl-desktop", standalone_mode=False)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # raised before a command ran (reading the arguments)
            raise unexpected(e, argv) from e
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"Error: {_one_line(e.format_message())}{hint}", err=True)
        return e.exit_code
    except (Unexpected, Refused) as e:
        e.show()
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"Error: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
