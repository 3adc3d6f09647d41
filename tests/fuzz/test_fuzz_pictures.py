"""Hostile pictures through ``cnnviz.load_image`` and ``cnnviz predict``: a picture, or one clear error.

Every case runs in a worker process capped at 3 GiB of address space above its start, with a deadline, so a
decompression bomb or a FIFO fails its case instead of exhausting the machine or blocking the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fuzz_corpus as corpus
import pytest
from fuzz_harness import Outcome, Worker, api_problem, check_all, cli_problem

GROUPS: dict[str, Callable[[Path], list[tuple[str, Path]]]] = {
    "modes and formats": corpus.mode_format_files,
    "truncated": corpus.truncated_files,
    "byte flips": corpus.flipped_files,
    "bombs": corpus.bomb_files,
    "odd sizes": corpus.odd_size_files,
    "exif orientation": corpus.exif_files,
    "animated and multi-page": corpus.animated_files,
    "not pictures": corpus.other_content_files,
}
# predict through the CLI for every n-th case of the plain groups, for all cases of the hostile ones
CLI_EVERY = {"modes and formats": 6, "truncated": 5, "byte flips": 4, "exif orientation": 6}
# the RGB preprocessing too for the hostile groups; the plain ones only for digits (time budget)
PLAIN = {"modes and formats", "odd sizes", "exif orientation", "truncated"}


def picture_problems(
    w: Worker, name: str, path: str, with_cli: bool, rgb: bool = True
) -> list[str | None]:
    """The property for one picture: load_image for a digits and an RGB model, and cnnviz predict."""
    problems: list[str | None] = []
    for pre in ("digits", "imagenet") if rgb else ("digits",):
        outcome = w.run(
            f"load_image[{pre}]({name})",
            {"kind": "api", "func": "load_image", "args": [path, ("$preprocess", pre)]},
            deadline=30,
        )
        problems.append(api_problem(outcome))
    if with_cli:
        outcome = w.run(
            f"cnnviz predict ({name})",
            {"kind": "cli", "argv": ["predict", "--model", "default", path]},
            deadline=30,
        )
        problems.append(cli_problem(outcome))
    return problems


@pytest.mark.parametrize("group", list(GROUPS))
def test_pictures(group: str, worker: Callable[[str], Worker], tmp_path: Path) -> None:
    files = GROUPS[group](tmp_path)
    assert files, "the generator made no files"
    w = worker("pictures")
    problems: list[str | None] = []
    every = CLI_EVERY.get(group, 1)
    for i, (name, path) in enumerate(files):
        case = f"{group}: {name} [{path.name}]"
        problems += picture_problems(w, case, str(path), i % every == 0, group not in PLAIN)
    check_all(problems, len(problems))


def test_special_paths(worker: Callable[[str], Worker], tmp_path: Path) -> None:
    """FIFO, socket, devices, symlink loops, folders: refused at once, never opened and read forever."""
    w = worker("pictures")
    problems: list[str | None] = []
    count = 0
    for name, path in corpus.special_paths(tmp_path):
        for pre in ("digits",):
            outcome = w.run(
                f"load_image({name})",
                {"kind": "api", "func": "load_image", "args": [path, ("$preprocess", pre)]},
                deadline=15,
            )
            problems.append(api_problem(outcome) or _named_error(outcome, name))
        outcome = w.run(
            f"cnnviz predict ({name})",
            {"kind": "cli", "argv": ["predict", "--model", "default", path]},
            deadline=15,
        )
        problems.append(cli_problem(outcome) or _refused(outcome, name))
        for argv in (
            ["rf", "--model", "default", "--layer", "0", "--unit", "0,0", "--image", path],
            ["convolve", "--image", path, "--kernel", "sobel_x"],
        ):
            outcome = w.run(
                f"cnnviz {argv[0]} ({name})", {"kind": "cli", "argv": argv}, deadline=15
            )
            # an empty --image means "no picture" to rf, which may then succeed
            refused = None if (path == "" and argv[0] == "rf") else _refused(outcome, name)
            problems.append(cli_problem(outcome) or refused)
        count += 1
    assert count >= 10
    check_all(problems, len(problems))


def _named_error(outcome: Outcome, name: str) -> str | None:
    # None of these paths is a picture: success would mean something was read from them.
    if outcome.status == "ok":
        return f"load_image({name}) succeeded on something that is not a regular picture file"
    return None


def _refused(outcome: Outcome, name: str) -> str | None:
    if outcome.rc == 0:
        return f"{outcome.case}: exit status 0 for a path that is not a picture file"
    return None
