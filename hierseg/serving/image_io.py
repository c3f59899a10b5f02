"""Reading user images for prediction: listing, robust decoding and a parallel tf.data pipeline.

Prediction runs over whatever a user points it at: JPEG or PNG of any size, grayscale, palette or
RGBA, sometimes with an EXIF orientation tag, sometimes truncated or not an image at all. Decoding
goes through PIL (in a ``tf.py_function``; PIL releases the GIL while it decodes, so
``num_parallel_calls`` decodes several images at once) because it

* applies the **EXIF orientation** (``ImageOps.exif_transpose``): masks are then returned in the
  orientation the user sees. Open Images boxes and masks are given on the *stored* pixels (the
  dataset ignores EXIF), so data preparation and evaluation on Open Images decode without it
  (:func:`hierseg.input.preprocess.decode_image`); pass ``apply_exif=False`` to match them here;
* turns grayscale, palette, CMYK and 16-bit images into RGB and drops an alpha channel (RGBA is
  composited onto black, which is what ``tf.io.decode_image(channels=3)`` does with the alpha too);
* turns any failure into a **marker** (``ok=False`` and the error text) instead of an exception, so a
  run over 100k images skips the bad one, lists it in its report and goes on.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from hierseg import atomic_write
from hierseg.input.preprocess import resize_and_pad

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

# Keys of the elements of :func:`image_dataset`.
PATH = "path"  # string []: the file read
OK = "ok"  # bool []: False when the file could not be read or decoded
ERROR = "error"  # string []: why not ("" when ok)
ORIGINAL = "original"  # uint8 [H, W, 3]: the decoded RGB image ([1, 1, 3] zeros when not ok)


def image_id_of(path: str) -> str:
    """The ImageID of an image file: its name without the extension (``.../721568e01a744247.jpg``)."""
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0]


def list_images(images: str) -> list[str]:
    """Image files named by a directory, a glob or a single file; local or ``gs://``; sorted.

    Only ``.jpg``, ``.jpeg`` and ``.png`` (any case) are taken from a directory; a glob or a file
    name is taken as given (so a broken ``x.jpg`` is still listed and then reported unreadable).

    Raises:
      FileNotFoundError: when nothing matches.
    """
    if any(c in images for c in "*?["):
        paths = [p for p in tf.io.gfile.glob(images) if not tf.io.gfile.isdir(p)]
    elif tf.io.gfile.isdir(images):
        root = images.rstrip("/")
        paths = [
            f"{root}/{name}"
            for name in tf.io.gfile.listdir(images)
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.endswith("/")
        ]
    elif tf.io.gfile.exists(images):
        paths = [images]
    else:
        paths = []
    if not paths:
        raise FileNotFoundError(f"no images found at {images} (a directory, a glob or a file; .jpg/.jpeg/.png)")
    return sorted(paths)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency composited onto black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits rather than clip.
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def decode_bytes(data: bytes, apply_exif: bool = True) -> np.ndarray:
    """Encoded image bytes -> uint8 ``[H, W, 3]`` RGB (EXIF orientation applied when asked).

    Raises:
      OSError, ValueError (from PIL) when the bytes are not a complete, decodable image.
    """
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # decodes the whole file: a truncated image fails here, not later
        if apply_exif:
            # In place: the default returns a full copy even without an orientation tag (another 4 bytes per
            # pixel: 320 MB on a 10000 x 8000 photo, on top of the decoded image and the array below).
            ImageOps.exif_transpose(img, in_place=True)
        rgb = _to_rgb(img)
        out = _to_array(rgb)
    if out.ndim != 3 or out.shape[2] != 3 or out.shape[0] < 1 or out.shape[1] < 1:
        raise ValueError(f"decoded to an unusable shape {out.shape}")
    return np.ascontiguousarray(out)


STRIP_ROWS = 256  # rows copied out of PIL at a time (see _to_array)


def _to_array(rgb: Image.Image) -> np.ndarray:
    """An RGB PIL image -> uint8 ``[H, W, 3]``, copied in strips of rows: ``np.asarray`` of the whole
    image goes through ``tobytes()``, which holds the pixels twice more at once (480 MB on a 10000 x 8000
    photo, next to PIL's own 320 MB)."""
    width, height = rgb.size
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, STRIP_ROWS):
        bottom = min(height, top + STRIP_ROWS)
        out[top:bottom] = np.asarray(rgb.crop((0, top, width, bottom)), dtype=np.uint8)
    return out


def read_image(path: str, apply_exif: bool = True) -> tuple[np.ndarray, str]:
    """Reads and decodes one image file (local or gs://).

    Returns:
      (image uint8 ``[H, W, 3]``, "") on success; (uint8 ``[1, 1, 3]`` zeros, error text) on failure.
    """
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        return decode_bytes(data, apply_exif), ""
    except Exception as e:  # noqa: BLE001 - any failure is a counted skip, reported with its text
        # Object addresses ("<_io.BytesIO object at 0x7f...>") would make reports differ between runs.
        msg = _ADDRESS.sub("", f"{type(e).__name__}: {e}").strip()
        return np.zeros([1, 1, 3], np.uint8), msg or type(e).__name__


def image_dataset(
    paths: Sequence[str],
    output_sizes: Sequence[int],
    *,
    apply_exif: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    keep_original: bool = True,
) -> tf.data.Dataset:
    """A dataset of decoded, preprocessed images, one element per path, in the order given.

    Each element is a dict: ``PATH``, ``OK``, ``ERROR``, ``ORIGINAL`` (when ``keep_original``) and,
    for every distinct ``S`` in ``output_sizes``, ``f"image_{S}"`` float32 ``[S, S, 3]`` and
    ``f"image_info_{S}"`` float32 ``[4, 2]`` from :func:`hierseg.input.preprocess.resize_and_pad`.
    The image is decoded once and shared by every size (and by both layers when they agree).
    """

    def decode(path: tf.Tensor):
        def py(p):
            image, err = read_image(p.numpy().decode("utf-8"), apply_exif)
            return image, not err, err

        image, ok, err = tf.py_function(py, [path], [tf.uint8, tf.bool, tf.string])
        image.set_shape([None, None, 3])
        ok.set_shape([])
        err.set_shape([])
        out = {PATH: path, OK: ok, ERROR: err}
        for size in sorted(set(int(s) for s in output_sizes)):
            out[f"image_{size}"], out[f"image_info_{size}"] = resize_and_pad(image, size)
        if keep_original:
            out[ORIGINAL] = image
        return out

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(paths), tf.string))
    return ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=True)


def save_label_png(labels: np.ndarray, path: str) -> None:
    """Class ids ``[H, W]`` as an 8-bit gray PNG (16-bit above 255), written atomically."""
    mode, dtype = ("L", np.uint8) if labels.max(initial=0) <= 255 else ("I;16", np.uint16)
    with atomic_write.atomic_path(path) as tmp:
        Image.fromarray(labels.astype(dtype), mode=mode).save(tmp, format="PNG")


def read_label_png(path: str) -> np.ndarray:
    """int64 ``[H, W]`` class ids of a label PNG written by :func:`save_label_png`; names a missing file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: label PNG missing")
    with Image.open(path) as im:
        return np.array(im).astype(np.int64)
