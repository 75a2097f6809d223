"""Real photographs for benchmarks, from Debian packages (fetched once, cached in bench/.cache).

`apt-get download` fetches the .deb files without installing anything; `dpkg -x` unpacks them.
Sources: opencv-doc (sample photos), mate-backgrounds and plasma-workspace-wallpapers (photo
wallpapers), plus the photos in the scikit-image and scikit-learn wheels. Logos and the second
image of stereo pairs are left out (naturally soft or dark photos stay in), and every wallpaper
is taken once (the packages ship each picture in many sizes).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from photo_curate.sample import bundled_photos

CACHE = Path(__file__).resolve().parent / ".cache"
PACKAGES = ("opencv-doc", "mate-backgrounds", "plasma-workspace-wallpapers")
_SKIP = {
    "LinuxLogo.jpg", "WindowsLogo.jpg", "blox.jpg", "ellipses.jpg", "pca_test1.jpg",
    "right.jpg", "aloeR.jpg", "leuvenB.jpg", "ela_modified.jpg", "Blender_Suzanne2.jpg",
}  # fmt: skip
_OPENCV_PNG = ("graf1.png", "rubberwhale1.png", "smarties.png", "pic2.png", "box_in_scene.png")


def _fetch(pkg: str) -> Path:
    root = CACHE / "x"
    stamp = CACHE / f".{pkg}.done"
    if stamp.exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["apt-get", "download", pkg], cwd=CACHE, check=True, capture_output=True, timeout=900
    )
    debs = sorted(CACHE.glob(f"{pkg}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {pkg} produced no .deb")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True, timeout=900)
    debs[-1].unlink()
    stamp.touch()
    return root


def debian_photos() -> list[Path]:
    """Distinct real photos from the Debian packages (about 90)."""
    root = CACHE / "x"
    for pkg in PACKAGES:
        root = _fetch(pkg)
    data = root / "usr/share/doc/opencv-doc/examples/data"
    out = [
        p
        for p in sorted(data.glob("*.jpg"))
        if p.name not in _SKIP and not p.name.startswith(("right", "left0", "left1"))
    ]
    out += [data / n for n in _OPENCV_PNG if (data / n).exists()]
    out += sorted((root / "usr/share/doc/opencv-doc/examples/text").glob("scenetext0*.jpg"))
    out += [
        p for p in sorted((root / "usr/share/backgrounds/mate").glob("*/*.jpg"))
        if "Elephants_" not in p.name
    ]  # fmt: skip
    for folder in sorted((root / "usr/share/wallpapers").glob("*/contents/images")):
        files = sorted(folder.iterdir(), key=lambda p: p.stat().st_size)
        jpgs = [p for p in files if p.suffix == ".jpg"]
        out.append((jpgs or files)[-1])
    return out


def opencv_data() -> Path:
    """opencv-doc's examples/data (photos, stereo pairs, videos)."""
    return _fetch("opencv-doc") / "usr/share/doc/opencv-doc/examples/data"


def photo_pool() -> list[Path]:
    """Every real photo available offline: the bundled ones plus the Debian ones."""
    return bundled_photos() + debian_photos()


if __name__ == "__main__":
    pool = photo_pool()
    print(f"{len(pool)} photos")
