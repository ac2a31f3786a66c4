"""A cap on image size for datasets with very large images (UCF-QNRF reaches 9000 x 6000 px).

Whole-image evaluation needs memory in proportion to the image area, so ``--max-side N``
bounds it: an image whose longer side exceeds ``N`` pixels is downscaled (area-averaging
bilinear, aspect kept) to a longer side of ``N`` and re-encoded at its own estimated IJG
quality, and its head points are scaled with it (an image spanning ``[0, W)`` maps onto
``[0, W')``), so the count does not change. Copies are written once, atomically, into
``$CDOMAIN_DATA/crowd-resized/<digest>/``, keyed by the source file's path, size and time and the
cap; the dataset itself is never written to. Images within the cap are used as they are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cdomain.data.embedded import data_dir
from cdomain.errors import DataError

__all__ = ["cap_images"]

CACHE_FOLDER = "crowd-resized"


def _size(path: str) -> tuple[int, int]:
    from cdomain.jpeg.errors import JPEGError
    from cdomain.jpeg.markers import parse_header

    try:
        header = parse_header(Path(path).read_bytes(), path)
    except (OSError, JPEGError) as error:
        raise DataError(f"{path}: cannot read the JPEG header ({error})") from None
    return header.width, header.height


def _resized(path: str, max_side: int, width: int, height: int) -> tuple[Path, float, float]:
    """The capped copy of ``path`` (written on first use) and the x / y scale factors."""
    stat = Path(path).stat()
    key = hashlib.sha256(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_side}|v1".encode()).hexdigest()
    scale = max_side / max(width, height)
    new_w, new_h = max(16, round(width * scale)), max(16, round(height * scale))
    target = data_dir() / CACHE_FOLDER / key[:2] / f"{key[2:34]}.jpg"
    if not target.is_file():
        import torch

        from cdomain.atomic import atomic_path
        from cdomain.jpeg.encode import write_jpeg
        from cdomain.jpeg.reader import read_coefficients

        image = read_coefficients(path)
        pixels = image.to_rgb()
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()
        small = torch.nn.functional.interpolate(tensor, size=(new_h, new_w), mode="bilinear", antialias=True,
                                                align_corners=False)
        out = small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        with atomic_path(target) as temporary:
            write_jpeg(out, temporary, image.quality())
    return target, new_w / width, new_h / height


def cap_images(splits: dict[str, tuple[list[str], list[np.ndarray]]], max_side: int,
               progress: bool = False) -> dict[str, tuple[list[str], list[np.ndarray]]]:
    """``splits`` with every image longer than ``max_side`` pixels replaced by a capped copy."""
    if max_side < 16:
        raise DataError(f"the image size cap must be >= 16 pixels, got {max_side}")
    capped = {}
    total = sum(len(paths) for paths, _ in splits.values())
    bar = tqdm(total=total, desc=f"capping images at {max_side} px", unit="img", disable=not progress, leave=False)
    for name, (paths, points) in splits.items():
        new_paths, new_points = [], []
        for path, pts in zip(paths, points):
            width, height = _size(path)
            if max(width, height) > max_side:
                copy, sx, sy = _resized(path, max_side, width, height)
                new_paths.append(str(copy))
                new_points.append(np.asarray(pts, dtype=np.float64) * np.array([sx, sy]))
            else:
                new_paths.append(path)
                new_points.append(pts)
            bar.update()
        capped[name] = (new_paths, new_points)
    bar.close()
    return capped
