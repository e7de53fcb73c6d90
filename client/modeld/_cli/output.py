"""Where modelctl writes: results on stdout, chatter and errors on stderr, JSON on demand.

On a terminal results are rich tables with colour; piped, the same tables lose
their borders and colour and keep one line per row, so ``grep``/``awk`` work.
With ``--json`` every command prints exactly one JSON document on stdout, with
stable field names (those of ``modeld.types.to_dict``), and errors go to stderr
as ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from modeld.types import Metric

__all__ = ["Output", "fmt_metric", "fmt_time", "key_metric"]

# Piped output keeps long rows on one line instead of wrapping at rich's default 80.
_PIPE_WIDTH = 512
# The metric worth a column, by preference: classification, regression, anomaly detection.
_KEY_METRICS = ("f1", "rmse", "roc_auc")


class Output:
    """The CLI's writer, configured by the global --json and --quiet options.

    Args:
        as_json: Print one JSON document per command instead of tables.
        quiet: No progress, hints or chatter: results and errors only.
    """

    def __init__(self, as_json: bool = False, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.out = Console(highlight=False, soft_wrap=False)
        self.err = Console(stderr=True, highlight=False)
        if not self.out.is_terminal:
            self.out = Console(highlight=False, width=_PIPE_WIDTH)
        if not self.err.is_terminal:
            self.err = Console(stderr=True, highlight=False, width=_PIPE_WIDTH)

    @property
    def interactive(self) -> bool:
        """Whether a person is watching: stderr is a terminal and stdin can answer prompts."""
        return self.err.is_terminal and sys.stdin.isatty()

    def json(self, data: Any) -> None:
        """Prints one JSON document on stdout (plain write: no wrapping, no markup).

        Args:
            data: JSON-ready data (see modeld.types.to_dict).
        """
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def result(self, *renderables: RenderableType) -> None:
        """Prints a result on stdout (tables, lines)."""
        if self.out.is_terminal:
            self.out.print(*renderables)
            return
        # Piped: drop the padding rich puts after the last cell, so lines end where text does.
        with self.out.capture() as captured:
            self.out.print(*renderables)
        lines = captured.get().splitlines()
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))

    def info(self, message: str) -> None:
        """Prints chatter on stderr, unless --quiet or --json."""
        if not (self.quiet or self.as_json):
            self.err.print(message)

    def error(self, code: str, message: str, show_code: bool = True) -> None:
        """Prints an error on stderr: `error: CODE: message`, or JSON with --json.

        Args:
            code: A status code name, or a short tag for client-side errors.
            message: What went wrong.
            show_code: Whether the text form shows the code (JSON always has it).
        """
        if self.as_json:
            sys.stderr.write(json.dumps({"error": {"code": code, "message": message}}) + "\n")
            return
        text = Text("error:", style="red")
        text.append(f" {code}: {message}" if show_code else f" {message}")
        self.err.print(text, soft_wrap=True)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[RenderableType]],
              title: str | None = None) -> Table:
        """A table styled for where it goes: boxed on a terminal, bare when piped.

        Args:
            columns: Header names.
            rows: Cell values, already formatted.
            title: Shown above the table on a terminal; when piped it goes to stderr, so
                stdout stays bare columns and a reader still sees e.g. which version answered.

        Returns:
            The table, to pass to ``result``.
        """
        terminal = self.out.is_terminal
        if title and not terminal and not self.quiet:
            self.err.print(title, soft_wrap=True, markup=False, highlight=False)
        table = Table(box=box.SIMPLE_HEAD if terminal else None, show_edge=False,
                      title=title if terminal else None, title_justify="left",
                      header_style="bold" if terminal else "", pad_edge=False)
        for name in columns:
            table.add_column(name, no_wrap=not terminal)
        for row in rows:
            table.add_row(*row)
        return table


def key_metric(metrics: dict[str, Metric] | Any) -> str:
    """The metric that best sums a model up: f1, rmse, roc_auc, else the first one.

    Args:
        metrics: Metric name -> Metric.

    Returns:
        "f1 0.938±0.002", or "" without metrics.
    """
    if not metrics:
        return ""
    name = next((n for n in _KEY_METRICS if n in metrics), sorted(metrics)[0])
    return f"{name} {fmt_metric(metrics[name])}"


def fmt_metric(metric: Metric) -> str:
    """mean±std with three decimals."""
    return f"{metric.mean:.3f}±{metric.std:.3f}"


def fmt_time(when: datetime | None) -> str:
    """A UTC timestamp to the second, or "-" when unset."""
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
