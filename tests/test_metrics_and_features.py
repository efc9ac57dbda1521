"""Metric definitions on hand-made rows, and feature rows that do not depend on model size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from headcast.extract.features import depth_bins, feature_columns, feature_row, head_means
from headcast.extract.metrics import reduce_rows
from headcast.schema import METRICS, VisualHeadThresholds


def masks(n_keys, visual, region, text):
    def mask(idx):
        m = torch.zeros(1, n_keys, dtype=torch.bool)
        m[0, idx] = True
        return m

    return mask(visual), mask(region), mask(text)


def test_masses_and_concentration_follow_their_definitions():
    visual, region, text = masks(8, [2, 3, 4, 5], [2], [6, 7])
    one_patch = torch.tensor([0.5, 0, 0.5, 0, 0, 0, 0, 0])
    uniform = torch.tensor([0.2, 0, 0.2, 0.2, 0.2, 0.2, 0, 0])
    two_patches = torch.tensor([0, 0, 0.3, 0.3, 0, 0, 0.4, 0])
    rows = torch.stack([one_patch, uniform, two_patches])[None, None]  # [1, 1, 3, 8]
    got = dict(zip(METRICS, reduce_rows(rows, visual, region, text)[0, 0].T, strict=True))
    torch.testing.assert_close(got["visual_mass"], torch.tensor([0.5, 0.8, 0.6]))
    torch.testing.assert_close(got["region_mass"], torch.tensor([0.5, 0.2, 0.3]))
    torch.testing.assert_close(got["text_mass"], torch.tensor([0.0, 0.0, 0.4]))
    torch.testing.assert_close(got["concentration"], torch.tensor([1.0, 0.0, 1 - math.log(2) / math.log(4)]))


def test_visual_head_rate_counts_samples_clearing_both_thresholds():
    samples = np.zeros((4, 1, 2, len(METRICS)))
    samples[:, 0, 0, METRICS.index("visual_mass")] = [0.9, 0.9, 0.1, 0.9]
    samples[:, 0, 0, METRICS.index("concentration")] = [0.5, 0.1, 0.5, 0.5]
    rate = head_means(samples, VisualHeadThresholds(visual_mass=0.25, concentration=0.2))["visual_head_rate"]
    assert rate.tolist() == [[0.5, 0.0]]


@pytest.mark.parametrize(("layers", "heads"), [(1, 1), (4, 4), (5, 5), (32, 32), (40, 40)])
def test_feature_rows_have_the_same_columns_for_any_layer_and_head_count(layers, heads):
    samples = np.random.default_rng(0).uniform(size=(3, layers, heads, len(METRICS)))
    row = feature_row(samples, VisualHeadThresholds())
    assert list(row) == feature_columns()
    assert all(np.isfinite(v) for v in row.values())


def test_depth_bins_split_layers_by_relative_depth():
    assert depth_bins(8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert depth_bins(40)[[0, 9, 10, 39]].tolist() == [0, 0, 1, 3]


def test_region_features_are_missing_not_zero_when_no_probe_has_a_box():
    samples = np.random.default_rng(0).uniform(size=(3, 4, 4, len(METRICS)))
    samples[..., METRICS.index("region_mass")] = np.nan
    row = feature_row(samples, VisualHeadThresholds())
    assert math.isnan(row["all.region_mass.mean"]) and math.isfinite(row["all.visual_mass.mean"])


def test_atomic_writes_get_ordinary_permissions_and_leave_nothing_behind_on_failure(tmp_path):
    import os

    from headcast.files import atomic_output

    with atomic_output(tmp_path / "a.txt") as tmp:
        tmp.write_text("ok")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_the_fingerprint_follows_the_processor_and_weights_but_not_a_readme(tmp_path):
    from headcast.extract.storage import checkpoint_fingerprint

    for name, text in {
        "config.json": "{}",
        "model.safetensors": "w",
        "preprocessor_config.json": "{}",
    }.items():
        (tmp_path / name).write_text(text)
    first = checkpoint_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("notes")
    assert checkpoint_fingerprint(tmp_path) == first
    (tmp_path / "preprocessor_config.json").write_text('{"crop_size": 336}')
    assert checkpoint_fingerprint(tmp_path) != first
