"""Shape priors (`hierseg priors`): k-means per class on hand-made masks (two shape families -> two
clusters), padding of small classes, determinism, the .npy file and the command on a prepared layer."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_layer import write_tiny_layer

from hierseg.priors import class_priors, compute_priors, read_priors, write_priors


def _square(rng, size=32):
    m = np.zeros([size, size], np.float32)
    m[
        1 + rng.integers(0, 2) : size - 1 - rng.integers(0, 2), 1 + rng.integers(0, 2) : size - 1 - rng.integers(0, 2)
    ] = 1
    return m


def _triangle(rng, size=32):
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx <= yy + rng.integers(-1, 2)).astype(np.float32)  # lower-left half


def test_two_shape_families_give_two_clusters():
    rng = np.random.default_rng(0)
    masks = np.stack([_square(rng) for _ in range(15)] + [_triangle(rng) for _ in range(25)])
    priors = class_priors(masks, 2, seed=0)
    assert priors.shape == (2, 32, 32) and priors.dtype == np.float32
    triangle, square = priors  # the larger cluster (25 triangles) comes first
    assert np.abs(triangle - np.mean(masks[15:], axis=0)).max() < 1e-5
    assert np.abs(square - np.mean(masks[:15], axis=0)).max() < 1e-5
    assert triangle[2, 29] < 0.1 and triangle[29, 2] > 0.9 and square[2, 29] > 0.5


def test_small_classes_are_padded_by_repetition():
    rng = np.random.default_rng(1)
    masks = np.stack([_square(rng), _triangle(rng), _square(rng)])
    masks[2] = masks[0]  # only 2 distinct masks
    priors = class_priors(masks, 5, seed=0)
    np.testing.assert_array_equal(priors, masks[[0, 1, 0, 1, 0]])


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    return write_tiny_layer(tmp_path_factory.mktemp("tiny_layer"), num_images=6)


def test_compute_priors_shape_determinism_and_empty_classes(layer):
    pattern = str(layer / "train-*.tfrecord")
    a = compute_priors(pattern, 4, 3, size=16, seed=5, show_progress=False)  # class 4 has no mask
    b = compute_priors(pattern, 4, 3, size=16, seed=5, show_progress=False)
    assert a.shape == (4, 3, 16, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0
    # The tiny layer's classes are rectangles, ellipses and diamonds: their centroids differ accordingly.
    rect, ellipse, diamond = a[0, 0], a[1, 0], a[2, 0]
    assert rect[0, 0] > 0.9 and ellipse[0, 0] < 0.1 and diamond[0, 0] < 0.1 and diamond[8, 8] > 0.9
    assert np.mean(rect) > np.mean(ellipse) > np.mean(diamond)
    assert np.allclose(a[3], a[3, 0]) and 0.3 < a[3].mean() < 0.9  # no masks: the class-agnostic mean, K times
    with pytest.raises(ValueError, match="outside the label map's 1..2"):
        compute_priors(pattern, 2, 3, size=16, show_progress=False)


def test_priors_file_round_trip_and_errors(tmp_path):
    priors = np.random.default_rng(0).uniform(size=[2, 3, 8, 8]).astype(np.float32)
    write_priors(priors, str(tmp_path / "p.npy"))
    np.testing.assert_array_equal(read_priors(str(tmp_path / "p.npy")), priors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npy"]
    np.save(tmp_path / "bad.npy", np.zeros([3, 8, 8], np.float32))
    with pytest.raises(ValueError, match=r"bad.npy: shape priors must be \[num_classes, K, S, S\]"):
        read_priors(str(tmp_path / "bad.npy"))
    with pytest.raises(FileNotFoundError, match="hierseg priors"):
        read_priors(str(tmp_path / "missing.npy"))


def test_priors_command(layer, tmp_path, capsys):
    from hierseg_cli.main import main

    out = tmp_path / "priors.npy"
    assert main(["priors", "--data", str(layer), "--k", "4", "--out", str(out), "--no_progress"]) == 0
    assert "shape priors [3, 4, 32, 32]" in capsys.readouterr().out
    priors = read_priors(str(out))
    assert priors.shape == (3, 4, 32, 32)
    np.testing.assert_array_equal(priors, compute_priors(str(layer / "train-*.tfrecord"), 3, 4, show_progress=False))
