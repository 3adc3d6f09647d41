"""Fixtures of the fuzz suite: worker processes, the hypothesis profile, and the peak-memory summary."""

from __future__ import annotations

import json
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fuzz_harness import PEAKS, Worker
from hypothesis import HealthCheck, Phase, settings

# Deterministic: the same examples on every run, so CI failures reproduce.
settings.register_profile(
    "fuzz",
    derandomize=True,
    max_examples=30,
    deadline=5000,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Cases that run in a worker are not shrunk: each example costs a round trip, and the case name already
# carries the whole input.
settings.register_profile(
    "fuzz-worker",
    settings.get_profile("fuzz"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

_REPORT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder for generated corpora, worker logs and the peak-memory report."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="session")
def worker(fuzz_dir: Path) -> Iterator[Callable[[str], Worker]]:
    """``worker(category)``: the worker process for that category (pictures, models, specs, cli, api)."""
    workers: dict[str, Worker] = {}
    logs = fuzz_dir / "logs"
    logs.mkdir()

    def get(category: str) -> Worker:
        if category not in workers:
            workers[category] = Worker(category, logs)
        return workers[category]

    yield get
    for w in workers.values():
        w.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = {
        "memory_cap_bytes_above_baseline": next(iter(workers.values())).memory_cap
        if workers
        else None,
        "categories": PEAKS.peaks,
        "cases": PEAKS.cases,
        "seconds": PEAKS.seconds,
        "slowest_cases": PEAKS.slowest,
        "rusage_children_maxrss_kb": children,
    }
    path = fuzz_dir / "fuzz_peaks.json"
    path.write_text(json.dumps(report, indent=2))
    _REPORT["path"] = path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not PEAKS.cases:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz: cases and peak memory")
    for category in sorted(PEAKS.cases):
        peak = PEAKS.peaks.get(category, {})
        rss, base = peak.get("peak_rss_kb", 0), peak.get("baseline_rss_kb", 0)
        line = f"{category:>10}: {PEAKS.cases[category]:5d} cases"
        if rss:
            line += (
                f", worker peak RSS {rss / 1024:.0f} MiB "
                f"({(rss - base) / 1024:+.0f} MiB over its {base / 1024:.0f} MiB start)"
                f" at {peak.get('case')}"
            )
        write(line)
    write(f"total: {sum(PEAKS.cases.values())} cases")
    if "path" in _REPORT:
        write(f"figures: {_REPORT['path']}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fuzz suite runs in the full test command, not in the fast loop (``-m "not slow"``)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
