"""The built distributions: what the wheel and sdist contain, and the installed app run from elsewhere.

The wheel is built from the sdist (so both are checked), installed with ``--no-deps`` into a fresh
virtual environment outside the repository, and borrows torch & co. from the test interpreter's
site-packages through a plain ``.pth`` line placed after its own site-packages (plain path lines do not
run the editable install's import hook, so the repository copy of cnnviz can never shadow the wheel).
Then the ``cnnviz`` console script runs from a directory outside the repository, also in hostile
surroundings: no write access to the working directory, a non-ASCII HOME, no HOME at all, and a
settings location that cannot be created.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnnviz._version import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
APP_ID = "io.github.cnnviz.cnnviz"
# Build outputs and caches that are never part of a distribution (.gitignore lists the same).
TREE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "out", "*.egg-info", "__pycache__", "*.pyc",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
)  # fmt: skip
RUNTIME_DEPS = ("torch", "torchvision", "numpy", "PIL", "PySide6", "shiboken6", "pyqtgraph", "tqdm")
NOBODY = 65534
TIMEOUT = 300


def _junk(name: str) -> bool:
    parts = name.split("/")
    return (
        "__pycache__" in parts
        or name.endswith((".pyc", ".pyo", "~"))
        or any(p.startswith(".") for p in parts if p)
    )


def _resource_files() -> list[str]:
    """Every shipped resource, relative to resources/ (what the wheel must carry)."""
    root = ROOT / "resources"
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not _junk(p.relative_to(root).as_posix())
    )


_NOBODY_USABLE: dict[Path, bool] = {}


def _nobody_usable(installed: Installed) -> bool:
    """Root can run the installed app as `nobody` (setpriv exists and nobody can read the environment)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    if installed.root not in _NOBODY_USABLE:
        probe = "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, sys.argv[1:])))"
        proc = installed.run(
            [installed.python, "-c", probe, "cnnviz", *RUNTIME_DEPS],
            cwd=installed.root,
            as_nobody=True,
        )
        _NOBODY_USABLE[installed.root] = proc.returncode == 0
    return _NOBODY_USABLE[installed.root]


def _user_without_write_access(installed: Installed) -> bool:
    """True: run as `nobody`; False: as the current user, for whom permissions already hold."""
    if os.geteuid() != 0:
        return False
    if not _nobody_usable(installed):
        pytest.skip(
            "root ignores read-only folders and cannot run the app as 'nobody' here (no setpriv, or the "
            "test environment is not readable by other users)"
        )
    return True


# -- fixtures: build, install -------------------------------------------------------------------------------


@dataclass
class Dists:
    wheel: Path
    sdist: Path | None


@dataclass
class Installed:
    root: Path  # world-readable scratch folder holding the environment and the runs' folders
    python: Path
    cnnviz: Path
    site: Path
    env: dict[str, str]

    def run(
        self,
        args: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        as_nobody: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if as_nobody:
            cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=self.env if env is None else env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT,
        )

    def folder(self, name: str, mode: int = 0o755) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        return path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """sdist, then the wheel built from the unpacked sdist (python -m build's default route)."""
    work = tmp_path_factory.mktemp("dist")
    src = work / "src"
    # A copy, so building never writes egg-info/build folders into the shared working tree.
    shutil.copytree(ROOT, src, ignore=TREE_IGNORE, symlinks=True)
    out = work / "out"
    if importlib.util.find_spec("build") is not None:
        cmd = [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check"]
        cmd += ["--outdir", str(out), str(src)]
    else:  # `build` is in the dev extra; pip alone still makes the wheel
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        cmd += ["--no-index", "-w", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"building the distributions failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = sorted(out.glob("cnnviz-*.whl"))
    sdists = sorted(out.glob("cnnviz-*.tar.gz"))
    assert len(wheels) == 1, f"expected one wheel in {out}: {sorted(out.iterdir())}"
    return Dists(wheel=wheels[0], sdist=sdists[0] if sdists else None)


@pytest.fixture(scope="module")
def installed(dists: Dists) -> Iterator[Installed]:
    """The wheel installed into a fresh venv outside the repository."""
    # Not under pytest's tmp_path: that is private to the test user, and some runs drop to `nobody`.
    root = Path(tempfile.mkdtemp(prefix="cnnviz-pkg-"))
    root.chmod(0o755)
    try:
        venv = root / "venv"
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run(
            [base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT
        )
        python = venv / "bin" / "python"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
             "--no-deps", "--no-index", "--disable-pip-version-check", str(dists.wheel)],
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert proc.returncode == 0, f"installing the wheel failed:\n{proc.stdout}\n{proc.stderr}"
        site = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        )  # fmt: skip
        dep_dirs: list[str] = []
        for name in RUNTIME_DEPS:
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.origin, f"{name} is not installed for the tests"
            folder = str(Path(spec.origin).resolve().parent.parent)
            if folder not in dep_dirs:
                dep_dirs.append(folder)
        # Plain path lines are appended after the venv's own site-packages and their .pth files are
        # not executed, so the editable install's finder in the test environment stays inactive.
        (site / "zz_cnnviz_test_deps.pth").write_text("\n".join(dep_dirs) + "\n", encoding="utf-8")

        home = root / "home"
        home.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "XDG_CONFIG_HOME",
                         "XDG_CACHE_HOME", "XDG_DATA_HOME", "TORCH_HOME", "PYTEST_CURRENT_TEST"}
        }  # fmt: skip
        env.update(
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            HOME=str(home),
            PYTHONNOUSERSITE="1",
            QT_QPA_PLATFORM="offscreen",
            CNNVIZ_NO_DIALOGS="1",  # an error must show in the report, not wait in a modal box
        )
        for p in [root, *root.rglob("*")]:  # readable for the runs as `nobody`
            mode = p.lstat().st_mode
            if stat.S_ISDIR(mode):
                p.chmod(mode | 0o055)
            elif stat.S_ISREG(mode):
                p.chmod(mode | 0o044 | (0o011 if mode & 0o100 else 0))
        yield Installed(root, python, venv / "bin" / "cnnviz", site, env)
    finally:
        for p in [root, *root.rglob("*")]:  # folders made read-only by the tests
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sample(installed: Installed) -> Path:
    """A sample digit found through the installed package, not the repository."""
    proc = installed.run(
        [installed.python, "-c",
         "from cnnviz.core.resources import sample_images; s = sample_images(); print(s[0] if s else '')"],
        cwd=installed.root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip()) if proc.stdout.strip() else None
    assert path is not None, (
        "the installed package has no sample pictures (resources/samples is empty)"
    )
    assert path.is_relative_to(installed.site), f"{path} is not inside the installed package"
    return path


# -- what the distributions contain -------------------------------------------------------------------------


def test_wheel_carries_package_and_every_resource(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"cnnviz-{__version__}.dist-info/METADATA").decode()
        entry_points = zf.read(f"cnnviz-{__version__}.dist-info/entry_points.txt").decode()
    junk = sorted(n for n in names if _junk(n))
    assert not junk, f"wheel contains junk: {junk}"

    code = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "cnnviz").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    missing = [f for f in code if f not in names]
    assert not missing, f"wheel lacks modules: {missing}"
    resources = _resource_files()
    missing = [f for f in resources if f"cnnviz/resources/{f}" not in names]
    assert not missing, f"wheel lacks resources: {missing}"
    # What the app needs at run time, nested folders included.
    for needed in (
        "models/digits.pt",
        "models/digits_arch.json",
        "LICENSES.md",
        "icons/cnnviz.svg",
    ):
        assert f"cnnviz/resources/{needed}" in names, f"wheel lacks resources/{needed}"
    for kind in ("samples/", "fonts/"):
        assert any(n.startswith(f"cnnviz/resources/{kind}") and n.count("/") >= 4 for n in names), (
            f"wheel has no nested files under resources/{kind}"
        )
    font_dirs = {n.split("/")[3] for n in names if n.startswith("cnnviz/resources/fonts/")}
    unlicensed = sorted(d for d in font_dirs if not any(
        n.startswith(f"cnnviz/resources/fonts/{d}/") and "LICEN" in n.upper() for n in names))  # fmt: skip
    assert not unlicensed, f"fonts shipped without their licence file: {unlicensed}"

    assert f"cnnviz-{__version__}.dist-info/licenses/LICENSE" in names
    assert f"cnnviz-{__version__}.dist-info/licenses/resources/LICENSES.md" in names
    assert f"\nVersion: {__version__}\n" in metadata
    assert "License-Expression: MIT" in metadata
    assert "cnnviz = cnnviz.cli:main" in entry_points
    size_mb = dists.wheel.stat().st_size / 1e6
    print(f"wheel {dists.wheel.name}: {size_mb:.2f} MB, {len(names)} files")
    # Generous ceiling: catches a checkpoint or build folder swept in by accident.
    assert size_mb < 25, f"wheel is {size_mb:.1f} MB; something large was swept in"


def test_sdist_carries_sources_tests_and_packaging(dists: Dists) -> None:
    if dists.sdist is None:
        pytest.skip(
            "the 'build' package is not installed (pip install -e '.[dev]'), so no sdist was made"
        )
    with tarfile.open(dists.sdist) as tf:
        names = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name and m.isfile()}
    junk = sorted(n for n in names if _junk(n))
    assert not junk, f"sdist contains junk: {junk}"
    for needed in ("pyproject.toml", "LICENSE", "CHANGELOG.md", "README.md", "PKG-INFO",
                   "packaging/cnnviz.desktop", f"packaging/{APP_ID}.metainfo.xml",
                   "packaging/cnnviz.spec", "packaging/install-desktop-entry.sh", "tests/test_packaging.py"):  # fmt: skip
        assert needed in names, f"sdist lacks {needed}"
    missing = [f for f in _resource_files() if f"resources/{f}" not in names]
    assert not missing, f"sdist lacks resources: {missing}"


# -- the installed app, run from outside the repository ----------------------------------------------------


def test_installed_copy_is_the_wheel(installed: Installed) -> None:
    proc = installed.run(
        [installed.python, "-c",
         "import cnnviz, importlib.metadata as m; from cnnviz.core.resources import resource_path; "
         "print(cnnviz.__file__); print(resource_path('models', 'digits.pt')); print(m.version('cnnviz'))"],
        cwd=installed.folder("cwd-plain"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    module, model, version = proc.stdout.split("\n")[:3]
    assert Path(module).is_relative_to(installed.site), (
        f"cnnviz imported from {module}, not the wheel"
    )
    assert Path(model).is_relative_to(installed.site) and Path(model).is_file()
    assert version == __version__


def test_cli_runs_from_outside_the_repository(installed: Installed, sample: Path) -> None:
    cwd = installed.folder("cwd-cli")
    proc = installed.run([installed.cnnviz, "--version"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"cnnviz {__version__}"

    proc = installed.run(
        [installed.cnnviz, "summary", "--model", "default", "--format", "json"], cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)

    proc = installed.run([installed.cnnviz, "predict", "--model", "default", sample], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()

    out = installed.folder("export ünï")
    proc = installed.run(
        [
            installed.cnnviz,
            "export",
            "--model",
            "default",
            "--image",
            sample,
            "--all-layers",
            "--out",
            out,
        ],
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    pngs = sorted(out.rglob("*.png"))
    assert pngs, f"export wrote no PNG: {sorted(out.rglob('*'))}"
    assert manifest
    assert not list(cwd.iterdir()), (
        f"commands left files in the working directory: {list(cwd.iterdir())}"
    )


def test_cli_runs_without_write_access_to_cwd(installed: Installed, sample: Path) -> None:
    as_nobody = _user_without_write_access(installed)
    cwd = installed.folder("cwd-readonly-cli")
    cwd.chmod(0o555)
    env = dict(installed.env)
    if as_nobody:
        env["HOME"] = str(_nobody_home(installed))
    # predict loads the bundled model and a picture: everything the other commands read, too.
    for args in (["predict", "--model", "default", sample],):
        proc = installed.run([installed.cnnviz, *args], cwd=cwd, env=env, as_nobody=as_nobody)
        assert proc.returncode == 0, (
            f"cnnviz {args[0]} in a read-only folder failed:\n{proc.stderr}"
        )
        assert "Traceback" not in proc.stderr


def test_errors_are_one_line_in_the_installed_app(installed: Installed) -> None:
    cwd = installed.folder("cwd-errors")
    proc = installed.run(
        [installed.cnnviz, "predict", "--model", "default", cwd / "no such.png"], cwd=cwd
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("cnnviz: error: ") and "Traceback" not in proc.stderr


# -- the window, started in hostile surroundings -----------------------------------------------------------

GUI_DRIVER = textwrap.dedent(
    """
    # Runs the installed `cnnviz gui` code path, closes the window once it has been up for a while,
    # and reports what it saw on one line.
    import json, sys, time
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from cnnviz.cli import main
    from cnnviz.gui.app import create_app

    app = create_app()
    deadline = time.monotonic() + float(sys.argv[1])
    settle = float(sys.argv[2])
    report = {}

    def poll():
        windows = [w for w in QApplication.topLevelWidgets()
                   if w.isVisible() and "cnnviz" in w.windowTitle()]
        now = time.monotonic()
        if windows and "title" not in report:
            report.update(title=windows[0].windowTitle(), desktop_file=app.desktopFileName(),
                          settings=QSettings("cnnviz", "cnnviz").fileName(), shown=now)
        if windows and now - report["shown"] >= settle:
            error = getattr(windows[0], "last_error", None)
            report["last_error"] = list(error) if error else None
            windows[0].close()
            return
        if now > deadline:
            report["timeout"] = True
            app.exit(3)
            return
        QTimer.singleShot(100, poll)

    QTimer.singleShot(0, poll)
    code = main(["gui"])
    report["code"] = code
    print("CNNVIZ-REPORT " + json.dumps(report))
    sys.exit(code)
    """
)


def _nobody_home(installed: Installed) -> Path:
    home = installed.folder("home-nobody")
    os.chown(home, NOBODY, NOBODY)
    return home


def _start_gui(
    installed: Installed, cwd: Path, env: dict[str, str], as_nobody: bool = False
) -> dict[str, object]:
    driver = installed.root / "drive_gui.py"
    if not driver.exists():
        driver.write_text(GUI_DRIVER, encoding="utf-8")
        driver.chmod(0o644)
    proc = installed.run(
        [installed.python, driver, "120", "2.5"], cwd=cwd, env=env, as_nobody=as_nobody
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CNNVIZ-REPORT ")]
    assert proc.returncode == 0 and lines, (
        f"the window did not start and close cleanly (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(lines[-1].split(" ", 1)[1])
    assert "cnnviz" in str(report["title"])
    assert report.get("last_error") is None, f"the window reported an error: {report['last_error']}"
    return report


def test_gui_starts_with_non_ascii_home(installed: Installed) -> None:
    home = installed.folder("hømé ünïcødé")
    env = dict(installed.env, HOME=str(home))
    report = _start_gui(installed, installed.folder("cwd-gui-unicode"), env)
    # Wayland and task bars match the running window to its menu entry by this name.
    assert f"{report['desktop_file']}.desktop" == "cnnviz.desktop"
    settings = Path(str(report["settings"]))
    assert settings.is_relative_to(home)
    assert settings.is_file(), (
        "closing the window did not save the preferences under the non-ASCII HOME"
    )


def test_gui_starts_without_home(installed: Installed) -> None:
    env = {k: v for k, v in installed.env.items() if k != "HOME"}
    if _nobody_usable(installed):
        # nobody's passwd home (/nonexistent) does not exist: the worst case for a fallback.
        _start_gui(installed, installed.folder("cwd-gui-nohome"), env, as_nobody=True)
    else:
        # Keep the real home's settings untouched.
        env["XDG_CONFIG_HOME"] = str(installed.folder("config-nohome"))
        _start_gui(installed, installed.folder("cwd-gui-nohome"), env)


def test_gui_starts_when_settings_cannot_be_written(installed: Installed) -> None:
    blocker = installed.root / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    # A folder below a regular file cannot be created by anyone, root included.
    env = dict(installed.env, XDG_CONFIG_HOME=str(blocker / "config"))
    report = _start_gui(installed, installed.folder("cwd-gui-rosettings"), env)
    assert not Path(str(report["settings"])).exists()


def test_gui_starts_without_write_access_to_cwd(installed: Installed) -> None:
    as_nobody = _user_without_write_access(installed)
    cwd = installed.folder("cwd-gui-readonly")
    cwd.chmod(0o555)
    env = dict(installed.env)
    if as_nobody:
        env["HOME"] = str(_nobody_home(installed))
    _start_gui(installed, cwd, env, as_nobody=as_nobody)


# -- desktop integration files ------------------------------------------------------------------------------


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(PACKAGING / "cnnviz.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_entry_is_valid() -> None:
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "cnnviz"
    assert entry["Icon"] == "cnnviz"
    assert entry["Terminal"] == "false"
    if shutil.which("desktop-file-validate") is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    proc = subprocess.run(
        ["desktop-file-validate", str(PACKAGING / "cnnviz.desktop")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stdout.lower(), proc.stdout


def test_metainfo_is_valid_and_matches_release() -> None:
    path = PACKAGING / f"{APP_ID}.metainfo.xml"
    tree = ET.parse(path).getroot()
    assert tree.findtext("id") == APP_ID
    assert tree.find("launchable").text == "cnnviz.desktop"  # type: ignore[union-attr]
    assert tree.findtext("project_license") == "MIT"
    releases = [r.get("version") for r in tree.iter("release")]
    assert releases and releases[0] == __version__, (
        "metainfo's newest release is not cnnviz's version"
    )
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {__version__} " in changelog or f"## [{__version__}]" in changelog
    assert "Copyright (c) 2026 the cnnviz authors" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    if shutil.which("appstreamcli") is None:
        pytest.skip("appstreamcli is not installed (apt-get install appstream)")
    proc = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_icons_are_generated_from_the_app_icon(tmp_path: Path) -> None:
    from PIL import Image

    svg = ROOT / "resources" / "icons" / "cnnviz.svg"
    assert svg.is_file(), "resources/icons/cnnviz.svg (the window icon) is missing"
    icons = PACKAGING / "icons"
    assert (
        icons / "hicolor" / "scalable" / "apps" / "cnnviz.svg"
    ).read_bytes() == svg.read_bytes(), (
        "packaging/icons is older than resources/icons/cnnviz.svg: run python packaging/make-icons.py"
    )
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        with Image.open(icons / "hicolor" / f"{size}x{size}" / "apps" / "cnnviz.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
    with Image.open(icons / "cnnviz.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(icons / "cnnviz.icns") as icns:
        assert icns.size[0] >= 512

    # The generator itself, with the rasteriser every installation has (Qt's).
    proc = subprocess.run(
        [sys.executable, str(PACKAGING / "make-icons.py"), "--renderer", "qt", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=TIMEOUT,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "hicolor" / "48x48" / "apps" / "cnnviz.png") as im:
        assert im.size == (48, 48)
        assert im.getchannel("A").getextrema()[1] == 255, "the rendered icon is empty"


def test_install_desktop_entry_script(tmp_path: Path) -> None:
    data = tmp_path / "data ü"
    fake = tmp_path / "bin" / "cnnviz"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    script = PACKAGING / "install-desktop-entry.sh"
    env = dict(os.environ, XDG_DATA_HOME=str(data))
    proc = subprocess.run(
        ["bash", str(script), "--exec", str(fake)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    desktop = data / "applications" / "cnnviz.desktop"
    text = desktop.read_text(encoding="utf-8")
    assert f"Exec={fake} gui" in text and f"TryExec={fake}\n" in text
    assert (data / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()
    assert (data / "icons" / "hicolor" / "48x48" / "apps" / "cnnviz.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "cnnviz.svg").is_file()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(
            ["desktop-file-validate", str(desktop)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout

    # A program path that an Exec line cannot hold is refused in one sentence.
    proc = subprocess.run(
        ["bash", str(script), "--exec", str(tmp_path / "no such" / "cnnviz")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("install-desktop-entry: error: ")

    proc = subprocess.run(
        ["bash", str(script), "--uninstall"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    left = sorted(p.name for p in data.rglob("*") if p.is_file() and p.name != "mimeinfo.cache")
    assert not left, f"uninstall left {left}"


def test_pyinstaller_spec_is_well_formed() -> None:
    # Building takes many minutes and gigabytes (torch), so it is not run here: check the spec parses
    # and names the pieces the frozen app needs.
    spec = (PACKAGING / "cnnviz.spec").read_text(encoding="utf-8")
    compile(spec, "cnnviz.spec", "exec")
    assert 'collect_submodules("cnnviz")' in spec  # sub-commands are imported by name
    assert '"cnnviz", "resources"' in spec
    assert (PACKAGING / "cnnviz-launcher.py").is_file()
