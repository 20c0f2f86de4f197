"""The command line: a thin shell over ``hitl_desktop.core`` (like sqlite_utils/cli.py).

``hitl-desktop`` with no command opens the app. Every command exits 0 on success and
non-zero with a one-line reason on stderr for bad input, leaving the database unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hitl_desktop.core.store import Store, StoreError, default_db_path

DB_HELP = "The database file (default: the user data folder's hitl-desktop.db)."


def _open_store(db: str | None, *, create: bool = True) -> Store:
    try:
        return Store.open(db, create=create)
    except StoreError as e:
        raise click.ClickException(str(e)) from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_path", type=click.Path(dir_okay=True), default=None, help=DB_HELP)
@click.option("--model", "model_path", type=click.Path(), default=None, help="Local model folder or GGUF file.")
@click.version_option(package_name="hitl-desktop")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, model_path: str | None) -> None:
    """hitl-desktop: a bench for specialist tutors to rank, flag and correct a local model's
    answers, and export them as reward-model training pairs.

    With no command, opens the app."""
    if ctx.invoked_subcommand is not None:
        return
    if db_path is not None:
        # Refuse a foreign file here, before any window, with the same one-line message.
        _open_store(db_path).close()
    from hitl_desktop.app import run

    ctx.exit(run(db_path=db_path, model_path=model_path, argv=sys.argv[:1]))


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--domain", default=None, help="Domain for records that name none.")
@click.option("--tutor", default="imported", show_default=True, help="Tutor for rankings that name none.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_command(file: str, db_path: str | None, domain: str | None, tutor: str, as_json: bool) -> None:
    """Import prompts (and finished judgments) from a JSONL or CSV file: all or nothing."""
    from hitl_desktop.core.importing import ImportFileError, import_file

    store = _open_store(db_path)
    size = Path(file).stat().st_size
    try:
        if size < 4_000_000:  # a progress bar only for files large enough to take a moment
            summary = import_file(store, file, default_domain=domain, default_tutor=tutor)
        else:
            with click.progressbar(length=size, label="Reading", file=sys.stderr) as bar:
                last = [0]

                def progress(done: int, total: int) -> None:
                    bar.update(done - last[0])
                    last[0] = done

                summary = import_file(
                    store, file, default_domain=domain, default_tutor=tutor, on_progress=progress
                )
    except ImportFileError as e:
        for line in e.details().splitlines()[1:]:
            click.echo("  " + line, err=True)
        raise click.ClickException(str(e)) from None
    except StoreError as e:
        raise click.ClickException(f"{file}: {e}; nothing was imported") from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(summary.__dict__, ensure_ascii=False))
    else:
        click.echo(
            f"Imported {summary.records} record(s) from {file}: {summary.prompts} new prompt(s)"
            f" ({summary.prompts_reused} already there), {summary.candidates} candidate(s),"
            f" {summary.judgments} judgment(s) ({summary.corrections} with a correction,"
            f" {summary.judgments_skipped} already there), {summary.queued} queued."
        )


@cli.command("generate")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--model", "model_path", type=click.Path(), default=None, help="Local model folder or GGUF file (default: the embedded Gemma 3 270M).")
@click.option("-k", "k", type=click.IntRange(2, 9), default=4, show_default=True, help="Candidates per prompt.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many prompts.")
@click.option("--domain", default=None, help="Only prompts of this domain.")
@click.option("--max-new-tokens", type=click.IntRange(1, 8192), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0.0, 5.0), default=0.8, show_default=True)
@click.option("--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed; each candidate gets its own seed from it.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line: candidates, tokens, seconds.")
def generate_command(
    db_path: str | None,
    model_path: str | None,
    k: int,
    limit: int | None,
    domain: str | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    as_json: bool,
) -> None:
    """Write K candidates for each queued prompt that has none (pre-generation, no GUI)."""
    from hitl_desktop.core.backends.base import ModelError, SamplingParams
    from hitl_desktop.core.backends.transformers_backend import load_backend
    from hitl_desktop.core.engine import fill_queue

    store = _open_store(db_path)
    try:
        todo = len(store.queued_prompts(domain=domain, without_candidates=True, limit=limit))
        if todo == 0:
            click.echo("No queued prompt without candidates.", err=True)
        try:
            backend = load_backend(
                model_path, on_progress=lambda f, msg: click.echo(f"\r{msg} {f:4.0%}", nl=False, err=True)
            )
        except ModelError as e:
            raise click.ClickException(str(e)) from None
        click.echo("", err=True)
        params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        with click.progressbar(length=todo, label=f"Generating with {backend.name}", file=sys.stderr) as bar:
            summary = fill_queue(
                store,
                backend,
                k=k,
                params=params,
                base_seed=seed,
                limit=limit,
                domain=domain,
                on_prompt_done=lambda n, total, result: bar.update(1),
            )
    except ModelError as e:
        raise click.ClickException(f"generation failed: {e}") from None
    except StoreError as e:
        raise click.ClickException(f"{e}; the candidates written so far are saved") from None
    finally:
        store.close()
    line = {
        "prompts": summary.prompts,
        "candidates": summary.candidates,
        "tokens": summary.tokens,
        "seconds": round(summary.seconds, 3),
        "tokens_per_second": round(summary.tokens_per_second, 2),
        "model": backend.name,
    }
    if as_json:
        click.echo(json.dumps(line))
    else:
        click.echo(
            f"Wrote {summary.candidates} candidate(s) for {summary.prompts} prompt(s): "
            f"{summary.tokens} tokens in {summary.seconds:.1f} s ({summary.tokens_per_second:.1f} tok/s)."
        )


@cli.command("export")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--format", "fmt", required=True, help="One of the export formats (see --help of the formats list below).")
@click.option("--out", required=True, type=click.Path(), help="Output: NAME.jsonl, NAME.parquet, or a folder (datasets save_to_disk).")
@click.option("--domain", default=None, help="Only this domain.")
@click.option("--tutor", default=None, help="Only this tutor (by name).")
@click.option("--since", default=None, help="Only judgments at or after this ISO date/time (UTC).")
@click.option("--until", default=None, help="Only judgments before this ISO date/time (UTC).")
@click.option("--test-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--keep-tutor-names", is_flag=True, help="Write tutor names as they are (default: pseudonyms).")
@click.option("--include-top-ranked", is_flag=True, help="sft: also the top-ranked answers, not only corrections.")
@click.option("--consensus", is_flag=True, help="One consensus ranking per prompt judged by several tutors.")
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
    as_json: bool,
) -> None:
    """Export judgments as training data (preference pairs and other formats)."""
    from hitl_desktop.core import export

    if fmt not in export.FORMATS:
        raise click.ClickException(f"unknown format {fmt!r}; formats: {', '.join(export.FORMATS)}")
    store = _open_store(db_path, create=False)
    try:
        items = None
        if consensus:
            from hitl_desktop.core.consensus import consensus_items

            items = consensus_items(list(store.judged_items(domain=domain, tutor=tutor, since=since, until=until)))
        summary = export.export_dataset(
            store,
            fmt=fmt,
            out=out,
            domain=domain,
            tutor=tutor,
            since=since,
            until=until,
            test_fraction=test_fraction,
            seed=seed,
            keep_tutor_names=keep_tutor_names,
            include_top_ranked=include_top_ranked,
            items=items,
        )
    except export.ExportError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
    if as_json:
        d = dict(summary.__dict__)
        d["out"] = str(d["out"])
        d["files"] = [str(f) for f in d["files"]]
        click.echo(json.dumps(d))
    else:
        split = f" (train {summary.train_rows}, test {summary.test_rows})" if test_fraction else ""
        click.echo(
            f"Wrote {summary.rows} {fmt} row(s){split} from {summary.judgments} judgment(s) of "
            f"{summary.prompts} prompt(s) to {', '.join(str(f) for f in summary.files)}."
        )


@cli.command("stats")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def stats_command(db_path: str | None, as_json: bool) -> None:
    """Counts of prompts, candidates, judgments, pairs and tutors, per domain; agreement."""
    store = _open_store(db_path, create=False)
    try:
        stats = store.stats()
        try:
            from hitl_desktop.core.agreement import agreement_stats
        except ImportError:  # pragma: no cover - agreement arrives with the many-tutors work
            agreement_stats = None
        if agreement_stats is not None:
            stats["agreement"] = agreement_stats(store)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(stats, ensure_ascii=False))
        return
    click.echo(f"Database: {db_path or default_db_path()}")
    for key in ("prompts", "queued", "candidates", "judgments", "corrections", "pairs", "tutors"):
        click.echo(f"  {key:<12}{stats[key]:>10}")
    if stats["domains"]:
        click.echo(f"\n  {'domain':<14}{'prompts':>9}{'judged':>9}{'pairs':>9}{'tutors':>8}")
        for name, d in stats["domains"].items():
            click.echo(f"  {name:<14}{d['prompts']:>9}{d['judgments']:>9}{d['pairs']:>9}{d['tutors']:>8}")
    agreement = stats.get("agreement")
    if agreement:
        alpha, tau = agreement.get("krippendorff_alpha"), agreement.get("kendall_tau")
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        click.echo(f"\n  agreement: Krippendorff alpha {fmt(alpha)}, Kendall tau {fmt(tau)}, units {agreement.get('units', 0)}")


@cli.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def merge_command(sources: tuple[str, ...], db_path: str | None, as_json: bool) -> None:
    """Bring other workstations' databases into this one (no duplicates; safe to repeat)."""
    from hitl_desktop.core.merging import merge_databases

    store = _open_store(db_path)
    try:
        summary = merge_databases(store, list(sources))
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(summary.to_dict(), default=str))
    else:
        click.echo(str(summary))


@cli.command("backup")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the backup to this new file (default: the rolling backups folder next to the database).")
def backup_command(db_path: str | None, out: str | None) -> None:
    """Copy the database (consistently, even while it is in use) to a backup file."""
    from hitl_desktop.core import backup

    db = Path(db_path) if db_path else default_db_path()
    try:
        path = backup.backup_database(db, reason="manual", out=out)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Backed up {db} to {path}.")


@cli.command("restore")
@click.argument("backup_file", required=False, type=click.Path(dir_okay=False))
@click.option("--latest", is_flag=True, help="Restore the newest backup that passes the integrity check.")
@click.option("--db", "db_path", type=click.Path(), default=None, help=DB_HELP)
def restore_command(backup_file: str | None, latest: bool, db_path: str | None) -> None:
    """Replace the database with a backup (the current one is kept as a backup first).

    Close every hitl-desktop window using the database before restoring."""
    from hitl_desktop.core import backup

    if (backup_file is None) == (not latest):
        raise click.UsageError("give either a BACKUP file or --latest")
    db = Path(db_path) if db_path else default_db_path()
    try:
        if latest:
            used, saved = backup.restore_latest(db)
        else:
            used, saved = Path(backup_file), backup.restore(db, backup_file)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    kept = f"; the database it replaced was saved as {saved}" if saved else ""
    click.echo(f"Restored {db} from {used}{kept}.")

def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="hitl-desktop", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
