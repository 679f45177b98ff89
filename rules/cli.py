"""``qa-engine rules``: list and validate rule packs (plugged in by entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qa_engine.errors import RulePackError
from rules.pack import load_rulebook

app = typer.Typer(help="Rule packs: list and validate.", no_args_is_help=True)
console = Console()

PacksArgument = Annotated[Optional[list[Path]], typer.Argument(help="Pack files or folders (default: bundled packs).")]


@app.command("list")
def list_rules(packs: PacksArgument = None) -> None:
    """List every rule with its pack version, category, severity and pattern counts."""
    book = load_rulebook(packs or None)
    table = Table(title=f"{len(book.rules)} rules in {len(book.packs)} packs")
    for column in ("pack", "version", "rule", "category", "severity", "terms", "regexes", "exceptions", "citation"):
        table.add_column(column, overflow="fold")
    for pack in book.packs:
        for rule in pack.rules:
            table.add_row(pack.pack, pack.version, rule.id, rule.category, rule.severity.value, str(len(rule.terms)),
                          str(len(rule.regexes)), str(len(rule.exceptions)), rule.citation)
    console.print(table)


@app.command()
def validate(packs: PacksArgument = None) -> None:
    """Validate packs; a malformed pack is refused with its file, rule id and reason (exit 1)."""
    try:
        book = load_rulebook(packs or None)
    except RulePackError as exc:
        console.print(f"[red]invalid[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    for pack in book.packs:
        console.print(f"[green]ok[/green] {escape(pack.source)}: {pack.pack} {pack.version}, {len(pack.rules)} rules, "
                      f"{sum(len(r.terms) for r in pack.rules)} terms")
