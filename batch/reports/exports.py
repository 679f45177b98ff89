"""Auditor exports: XLSX (frozen header, filters, widths, native charts) and CSV (UTF-8 with BOM).

Both write `violations.violation_rows` under the report header; neither computes anything.
Text cells are written as text, never formulas: a customer typing ``=HYPERLINK(…)`` must not
become a live formula in an auditor's spreadsheet.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import xlsxwriter

from batch.reports.violations import COLUMNS, SummaryTable

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(path: Path, header: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    """The header as ``# key: value`` lines, then one row per finding (keys as column names).

    UTF-8 with BOM so Excel opens the Chinese text correctly; read it back with any CSV
    reader by skipping the lines that start with ``#``.
    """
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        for key, value in header:
            writer.writerow([f"# {key}: {value}"])
        writer.writerow([c.key for c in COLUMNS])
        for row in rows:
            writer.writerow([_csv_cell(row[c.key]) for c in COLUMNS])


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def write_xlsx(path: Path, header: list[tuple[str, str]], rows: list[dict[str, Any]],
               tables: list[SummaryTable]) -> None:
    """Sheets: Report (header), Violations (one row per finding), Summary (counts by category
    and day with native charts), then one sheet per remaining summary table."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                               "strings_to_numbers": False, "strings_to_urls": False})
    bold = workbook.add_format({"bold": True, "bg_color": "#DDE6F0", "border": 1, "text_wrap": True,
                                "valign": "top"})
    wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
    warn = workbook.add_format({"bold": True, "font_color": "#B00020"})

    report = workbook.add_worksheet("Report")
    report.set_column(0, 0, 16)
    report.set_column(1, 1, 110)
    for i, (key, value) in enumerate(header):
        report.write_string(i, 0, key, bold)
        report.write_string(i, 1, value, warn if key == "personal_data" and value.startswith("UNMASKED") else wrap)

    sheet = workbook.add_worksheet("Violations")
    _write_table(sheet, [c.title for c in COLUMNS], ([row[c.key] for c in COLUMNS] for row in rows), bold,
                 len(rows), widths=[c.width for c in COLUMNS], text_format=wrap)

    named = {t.name: t for t in tables}
    summary = workbook.add_worksheet("Summary")
    by_category, by_day = named["by_category"], named["by_day"]
    summary.set_column(0, len(by_day.columns) + 1, 14)
    summary.write_string(0, 0, by_category.title, warn)
    _write_table(summary, list(by_category.columns), by_category.rows, bold, len(by_category.rows), first_row=1,
                 filters=False)
    day_top = len(by_category.rows) + 4
    summary.write_string(day_top - 1, 0, by_day.title, warn)
    _write_table(summary, list(by_day.columns), by_day.rows, bold, len(by_day.rows), first_row=day_top,
                 filters=False)
    _add_charts(workbook, summary, by_category, by_day, day_top)

    for table in tables:
        if table.name not in ("by_category", "by_day"):
            extra = workbook.add_worksheet(table.name)
            _write_table(extra, list(table.columns), table.rows, bold, len(table.rows),
                         widths=[40 if c == "citation" else 16 for c in table.columns])
    workbook.close()


def _write_table(sheet, titles: list[str], values, bold, count: int, first_row: int = 0, filters: bool = True,
                 widths: list[int] | None = None, text_format=None) -> None:
    """Header row, data rows, widths; a frozen header and an autofilter on full sheets."""
    for j, width in enumerate(widths or []):
        sheet.set_column(j, j, width, text_format if width >= 30 else None)
    for j, title in enumerate(titles):
        sheet.write_string(first_row, j, title, bold)
    for i, row in enumerate(values, start=first_row + 1):
        for j, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                sheet.write_string(i, j, value)
            else:
                sheet.write(i, j, value)
    if filters:
        sheet.freeze_panes(first_row + 1, 0)
        sheet.autofilter(first_row, 0, first_row + max(count, 1), len(titles) - 1)


def _add_charts(workbook, summary, by_category: SummaryTable, by_day: SummaryTable, day_top: int) -> None:
    """A stacked column chart of violations per day by category and a bar chart per category."""
    if by_day.rows:
        days = by_day.rows
        per_day = workbook.add_chart({"type": "column", "subtype": "stacked"})
        for j, category in enumerate(by_day.columns[2:], start=2):
            per_day.add_series({"name": category,
                                "categories": ["Summary", day_top + 1, 0, day_top + len(days), 0],
                                "values": ["Summary", day_top + 1, j, day_top + len(days), j]})
        per_day.set_title({"name": "Violations per day"})
        per_day.set_x_axis({"name": "day"})
        per_day.set_y_axis({"name": "violations"})
        per_day.set_size({"width": 900, "height": 360})
        summary.insert_chart(1, len(by_day.columns) + 2, per_day)
    if by_category.rows:
        per_category = workbook.add_chart({"type": "bar"})
        per_category.add_series({"name": "violations",
                                 "categories": ["Summary", 2, 0, 1 + len(by_category.rows), 0],
                                 "values": ["Summary", 2, 1, 1 + len(by_category.rows), 1]})
        per_category.set_title({"name": "Violations by category"})
        per_category.set_legend({"none": True})
        per_category.set_size({"width": 600, "height": 320})
        summary.insert_chart(21, len(by_day.columns) + 2, per_category)
