"""The traffic generator's pure parts: model columns, request bodies, scores, accuracy."""

from __future__ import annotations

import pytest
from scipy.stats import ks_2samp

from kubeloop.sampledata.generate import GeneratorConfig, generate_events
from kubeloop.sampledata.requests import (
    Outcome,
    TrafficInputError,
    accuracy_series,
    build_instances,
    build_v2_request,
    feature_columns,
    predictions_of,
    score_of,
)
from kubeloop.sampledata.traffic import TrafficConfig, make_streams

SPEC = {"features": [{"featureView": "user-activity", "names": ["dwell_seconds", "clicks"]}]}


def test_feature_columns_follow_the_training_set_naming() -> None:
    assert feature_columns(SPEC) == {
        "user_activity__dwell_seconds": "dwell_seconds",
        "user_activity__clicks": "clicks",
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.features"),
        ({"features": [{"names": ["a"]}]}, "features[0].featureView"),
        ({"features": [{"featureView": "v", "names": []}]}, "features[0].names"),
    ],
)
def test_feature_columns_name_the_bad_field(spec: dict, field: str) -> None:
    with pytest.raises(TrafficInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        feature_columns(spec)


def test_build_instances_from_generated_rows() -> None:
    rows = generate_events(GeneratorConfig(rows=20, seed=3)).head(3).to_dict("records")
    body = build_instances(rows, feature_columns(SPEC))
    assert len(body["instances"]) == 3
    first = body["instances"][0]
    assert first == {
        "user_activity__dwell_seconds": float(rows[0]["dwell_seconds"]),
        "user_activity__clicks": float(rows[0]["clicks"]),
    }
    assert "label" not in first


def test_build_instances_names_a_missing_raw_column() -> None:
    with pytest.raises(TrafficInputError, match=r"row 1 lacks raw column\(s\) \['clicks'\]"):
        build_instances(
            [{"dwell_seconds": 1.0, "clicks": 2}, {"dwell_seconds": 1.0}], feature_columns(SPEC)
        )
    with pytest.raises(TrafficInputError, match="no rows"):
        build_instances([], feature_columns(SPEC))


@pytest.mark.parametrize(
    ("prediction", "score"),
    [(0.7, 0.7), (1, 1.0), ([0.2, 0.8], 0.8), ({"p0": 0.4, "p1": 0.6}, 0.6), (True, 1.0)],
)
def test_score_of_each_prediction_shape(prediction: object, score: float) -> None:
    assert score_of(prediction) == pytest.approx(score)


def test_score_of_rejects_unknown_shapes() -> None:
    with pytest.raises(TrafficInputError, match="unsupported prediction"):
        score_of("yes")


def test_accuracy_series_buckets_by_serving_time() -> None:
    outcomes = [
        Outcome(served_at=1.0, version="1", correct=True),
        Outcome(served_at=9.0, version="1", correct=False),
        Outcome(served_at=12.0, version="2", correct=True),
    ]
    assert accuracy_series(outcomes, 10.0) == [(0.0, 0.5, 2), (10.0, 1.0, 1)]
    with pytest.raises(TrafficInputError, match="bucket_s"):
        accuracy_series(outcomes, 0)


def test_shifted_stream_moves_only_the_shifted_columns() -> None:
    config = TrafficConfig(url="http://x", model="m", stream_rows=2000, shift_sigma=1.0)
    world = GeneratorConfig(rows=2000, seed=config.seed, shift_relation=False)
    reference, shifted = make_streams(config, world=world)
    assert shifted["dwell_seconds"].mean() == pytest.approx(reference["dwell_seconds"].mean() + 40)
    assert (shifted["clicks"] == reference["clicks"]).all()
    assert (shifted["label"] == reference["label"]).all()


def test_the_shifted_world_flips_price_sensitivity() -> None:
    """By default the shift changes the labels too: budget shoppers convert before the
    shift, premium shoppers after it (same events, same draws)."""
    reference, shifted = make_streams(
        TrafficConfig(url="http://x", model="m", stream_rows=4000, shift_sigma=1.0)
    )
    assert (shifted["clicks"] == reference["clicks"]).all()
    cheap = reference["price"] < reference["price"].median()
    assert reference.loc[cheap, "label"].mean() > reference.loc[~cheap, "label"].mean() + 0.2
    assert shifted.loc[cheap, "label"].mean() < shifted.loc[~cheap, "label"].mean() - 0.2


def test_unshifted_traffic_comes_from_the_world_the_model_was_trained_on() -> None:
    """New events of the training data's world (its users, items, item prices) pass a KS test
    against that data, as a drift monitor will run it; a stream of another world does not —
    the false alarm the demo once raised before any shift."""
    world = GeneratorConfig(rows=20_000, seed=0)
    training = generate_events(world)
    config = TrafficConfig(url="http://x", model="m", stream_rows=2000, seed=1)
    reference, _ = make_streams(config, world=world)
    assert (
        not reference[["user_id", "item_id"]]
        .eq(training[["user_id", "item_id"]][:2000])
        .all()
        .all()
    )
    for column in ("price", "dwell_seconds", "discount", "clicks"):
        assert ks_2samp(reference[column], training[column]).pvalue > 0.001, column
    elsewhere, _ = make_streams(config)  # no world: one of the traffic's own seed
    # Another world's users shop in other price tiers, with other habits.
    columns = ("price", "dwell_seconds", "discount")
    assert min(ks_2samp(elsewhere[c], training[c]).pvalue for c in columns) < 1e-4


def test_v2_request_and_answers_of_both_protocols() -> None:
    rows = [{"dwell_seconds": 1.5, "clicks": 2}, {"dwell_seconds": 3.0, "clicks": 0}]
    body = build_v2_request(rows, feature_columns(SPEC))
    assert body["inputs"][1] == {
        "name": "user_activity__clicks",
        "shape": [2],
        "datatype": "FP32",
        "data": [2.0, 0.0],
    }
    assert predictions_of({"predictions": [0.1]}) == [0.1]
    assert predictions_of({"outputs": [{"data": [0.2, 0.3]}]}) == [0.2, 0.3]
    with pytest.raises(TrafficInputError, match="neither predictions"):
        predictions_of({"error": "x"})
