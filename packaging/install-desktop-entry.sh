#!/usr/bin/env bash
# Add cnnviz to the desktop's application menu for the current user (no root needed):
#   ~/.local/share/applications/cnnviz.desktop, the icons under ~/.local/share/icons/hicolor,
#   ~/.local/share/metainfo/io.github.cnnviz.cnnviz.metainfo.xml (software centres read it).
#
# Usage: packaging/install-desktop-entry.sh [--exec PATH] [--uninstall]
#   --exec PATH   the cnnviz program the menu entry starts (default: `cnnviz` found on PATH, written
#                 as an absolute path so the entry works even when the desktop session's PATH
#                 does not include your virtual environment)
#   --uninstall   remove what an earlier run installed
# Honours XDG_DATA_HOME (default ~/.local/share).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app_id="io.github.cnnviz.cnnviz"
exec_path=""
uninstall=0

die() { echo "install-desktop-entry: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --exec) [ $# -ge 2 ] || die "--exec needs the path of the cnnviz program"; exec_path="$2"; shift 2 ;;
        --exec=*) exec_path="${1#--exec=}"; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

if [ -z "${XDG_DATA_HOME:-}" ]; then
    [ -n "${HOME:-}" ] || die "neither XDG_DATA_HOME nor HOME is set, so there is no place to install to; set one of them"
    data_home="$HOME/.local/share"
else
    data_home="$XDG_DATA_HOME"
fi
apps="$data_home/applications"
icons="$data_home/icons/hicolor"
metainfo="$data_home/metainfo"

refresh_caches() {
    # Menus pick the change up without a re-login where these tools exist; harmless where not.
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$apps" 2>/dev/null || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$icons/index.theme" ]; then
        gtk-update-icon-cache -q -t "$icons" 2>/dev/null || true
    fi
}

if [ "$uninstall" = 1 ]; then
    rm -f "$apps/cnnviz.desktop" "$metainfo/$app_id.metainfo.xml"
    rm -f "$icons"/*/apps/cnnviz.png "$icons"/*/apps/cnnviz.svg
    refresh_caches
    echo "cnnviz: desktop entry removed from $data_home"
    exit 0
fi

if [ -z "$exec_path" ]; then
    exec_path="$(command -v cnnviz || true)"
    [ -n "$exec_path" ] || die "the cnnviz program is not on PATH; install cnnviz first (pip install cnnviz) or pass --exec /path/to/cnnviz"
fi
case "$exec_path" in
    /*) ;;
    *) exec_path="$(cd "$(dirname "$exec_path")" && pwd)/$(basename "$exec_path")" ;;
esac
[ -x "$exec_path" ] || die "$exec_path is not an executable program; pass --exec with the path of cnnviz"
case "$exec_path" in
    *[[:space:]\"\'\\\`\$\|\&%]*) die "the path $exec_path contains spaces, quotes or other special characters, which a desktop entry's Exec line cannot hold safely; link cnnviz from a plain path (e.g. ~/.local/bin/cnnviz) and pass that" ;;
esac

icon_src="$here/icons/hicolor"
[ -d "$icon_src" ] || die "icons not found in $icon_src; generate them with: python packaging/make-icons.py"

install_file() {  # install_file SRC DEST: atomic copy, mode 644
    local src="$1" dest="$2" tmp
    mkdir -p "$(dirname "$dest")"
    tmp="$(mktemp "$(dirname "$dest")/.cnnviz.XXXXXX")"
    cat "$src" > "$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$dest"
}

tmp_desktop="$(mktemp)"
trap 'rm -f "$tmp_desktop"' EXIT
sed -e "s|^Exec=cnnviz|Exec=$exec_path|" -e "s|^TryExec=cnnviz\$|TryExec=$exec_path|" \
    "$here/cnnviz.desktop" > "$tmp_desktop"
install_file "$tmp_desktop" "$apps/cnnviz.desktop"
install_file "$here/$app_id.metainfo.xml" "$metainfo/$app_id.metainfo.xml"
(cd "$icon_src" && find . -type f \( -name 'cnnviz.png' -o -name 'cnnviz.svg' \)) | while read -r rel; do
    install_file "$icon_src/$rel" "$icons/${rel#./}"
done
refresh_caches
echo "cnnviz: desktop entry installed in $apps (starts $exec_path)"
