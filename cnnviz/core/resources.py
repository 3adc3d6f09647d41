"""Files shipped with cnnviz (read through importlib.resources, so installed copies work anywhere)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("models", "digits.pt")``.

    Resources are installed as plain files inside the package (never zipped), so a real path exists.
    """
    root = resources.files("cnnviz.resources")
    # one joined argument: MultiplexedPath.joinpath (namespace packages, Python < 3.12) takes only one
    return Path(str(root.joinpath("/".join(parts)))) if parts else Path(str(root))


def sample_images() -> list[Path]:
    """The sample pictures shipped in resources/samples, digits first, sorted by name."""
    root = resource_path("samples")
    if not root.is_dir():
        return []
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    files = [p for p in root.rglob("*") if p.suffix.lower() in suffixes]
    return sorted(files, key=lambda p: (p.parent.name != "digits", str(p)))
