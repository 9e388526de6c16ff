"""The report's text formats: markdown tables (as one string, or as lines to splice into
a page) and CSV."""

from __future__ import annotations

import csv
import io


def markdown_rows(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table's lines, then a blank one."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def markdown_table(header: list[str], rows: list[list]) -> str:
    """The same table as one string ending in a newline."""
    return "\n".join(markdown_rows(header, rows)[:-1]) + "\n"


def csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
