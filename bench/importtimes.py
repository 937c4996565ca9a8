"""Read the output of ``python -X importtime`` and summarise it over several runs."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from harness import rotated


@dataclass
class ImportLine:
    """One module of an importtime report; times in seconds."""

    name: str
    level: int
    own: float
    cumulative: float
    parent: str = "(top level)"


def parse_importtime(stderr: str) -> list[ImportLine]:
    """Return the modules of one ``-X importtime`` report, each with its importer.

    Lines read ``import time: SELF | CUMULATIVE | NAME`` with times in µs and NAME
    indented two spaces per nesting level. A module is printed after the modules it
    imports, so its importer is the next line with a smaller level.
    """
    lines = []
    for text in stderr.splitlines():
        if not text.startswith("import time:") or "[us]" in text:
            continue
        head, cumulative, name = text.split("|", 2)
        name = name[1:]  # the space after the separator
        level = (len(name) - len(name.lstrip(" "))) // 2
        own = int(head.removeprefix("import time:").strip())
        lines.append(ImportLine(name.strip(), level, own / 1e6, int(cumulative) / 1e6))
    for index, line in enumerate(lines):
        for later in lines[index + 1 :]:
            if later.level < line.level:
                line.parent = later.name
                break
    return lines


@dataclass
class ImportProfile:
    """Median import times of one command over several runs."""

    runs: int
    total: float
    modules: dict[str, ImportLine] = field(default_factory=dict)

    def matching(self, prefixes: tuple[str, ...]) -> list[str]:
        """Return the imported modules that are one of ``prefixes`` or inside one."""
        return [
            name
            for name in self.modules
            if any(
                name == prefix or name.startswith(prefix + ".") for prefix in prefixes
            )
        ]

    def heavy_roots(
        self, minimum_seconds: float
    ) -> list[tuple[str, str, float, float]]:
        """Return (name, importer, cumulative, own) of top-level packages and scraper modules.

        Only those with at least ``minimum_seconds`` of cumulative time, slowest first.
        """
        found = [
            (line.name, line.parent, line.cumulative, line.own)
            for line in self.modules.values()
            if _is_root(line.name) and line.cumulative >= minimum_seconds
        ]
        return sorted(found, key=lambda item: -item[2])

    def extra_roots(
        self, other: ImportProfile, minimum_seconds: float
    ) -> list[tuple[str, str, float]]:
        """Return the heavy top-level packages that ``other`` does not import."""
        return [
            (name, parent, cumulative)
            for name, parent, cumulative, _ in self.heavy_roots(minimum_seconds)
            if name not in other.modules
        ]


def _is_root(name: str) -> bool:
    return "." not in name or name.startswith("scraper.")


def profile_imports(
    commands: dict[str, Callable[[], str]], repeats: int
) -> dict[str, ImportProfile]:
    """Run each command ``repeats`` times, interleaved, and return its median import times.

    Each command returns the standard error of one run under ``-X importtime``.
    """
    reports: dict[str, list[list[ImportLine]]] = {label: [] for label in commands}
    for turn in range(repeats):
        for label in rotated(list(commands), turn):
            reports[label].append(parse_importtime(commands[label]()))
    profiles = {}
    for label, runs in reports.items():
        totals = [
            sum(line.cumulative for line in run if line.level == 0) for run in runs
        ]
        by_name: dict[str, list[ImportLine]] = {}
        for run in runs:
            for line in run:
                by_name.setdefault(line.name, []).append(line)
        modules = {}
        for name, lines in by_name.items():
            modules[name] = ImportLine(
                name,
                lines[0].level,
                statistics.median(line.own for line in lines),
                statistics.median(line.cumulative for line in lines),
                lines[0].parent,
            )
        profiles[label] = ImportProfile(len(runs), statistics.median(totals), modules)
    return profiles


if __name__ == "__main__":
    # Summarise a report piped in: python -X importtime -c 'import x' 2>&1 | python importtimes.py
    profile = profile_imports({"stdin": sys.stdin.read}, 1)["stdin"]
    for name, parent, cumulative, own in profile.heavy_roots(0.001):
        print(f"{cumulative * 1000:8.1f} ms  {name}  (imported by {parent})")
