"""Detector interface, input validation, registry and the non-statistical behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.monitor.drift import (
    DETECTORS,
    DetectorConfigError,
    DriftResult,
    InvalidWindowError,
    NotFittedError,
    UnknownDetectorError,
    create_detector,
    detector_names,
)
from services.monitor.drift.correction import correct

SCIPY_DETECTORS = ["ks", "chi2", "tabular", "psi", "prediction"]


@pytest.fixture
def reference() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((400, 3))


def test_registry_names_match_the_mlmodel_api_and_licences() -> None:
    assert set(detector_names()) == {
        "ks", "chi2", "tabular", "psi", "prediction", "mmd",
        "alibi-ks", "alibi-chi2", "alibi-tabular", "alibi-mmd", "alibi-prediction",
    }  # fmt: skip
    for name, cls in DETECTORS.items():
        assert cls.license.startswith("BSL") == name.startswith("alibi-")


def test_unknown_detector_names_the_value_and_the_choices() -> None:
    with pytest.raises(UnknownDetectorError) as caught:
        create_detector("alibi-kss")
    assert "'alibi-kss'" in str(caught.value)
    assert "alibi-ks" in str(caught.value) and "psi" in str(caught.value)


def test_bad_options_are_config_errors_naming_them() -> None:
    with pytest.raises(DetectorConfigError, match="n_permutations"):
        create_detector("ks", n_permutations=10)
    with pytest.raises(DetectorConfigError, match="p_value"):
        create_detector("ks", p_value=1.5)
    with pytest.raises(DetectorConfigError, match="'holm'"):
        create_detector("chi2", correction="holm")
    with pytest.raises(DetectorConfigError, match="n_permutations=10 cannot resolve"):
        create_detector("alibi-mmd", p_value=0.05, n_permutations=10)
    with pytest.raises(DetectorConfigError, match="threshold"):
        create_detector("psi", threshold=0)
    with pytest.raises(DetectorConfigError, match="n_permutations=5 cannot resolve"):
        create_detector("mmd", p_value=0.05, n_permutations=5)
    with pytest.raises(DetectorConfigError, match="'tpu'"):
        create_detector("mmd", device="tpu")
    with pytest.raises(DetectorConfigError, match="max_reference_rows"):
        create_detector("mmd", max_reference_rows=1)


def test_check_before_fit_is_an_error() -> None:
    with pytest.raises(NotFittedError):
        create_detector("ks").check(np.zeros((3, 2)))


@pytest.mark.parametrize("name", ["ks", "chi2", "tabular", "psi", "mmd"])
def test_same_window_as_reference_is_no_drift(name: str, reference: np.ndarray) -> None:
    detector = create_detector(name).fit(reference, ["a", "b", "c"])

    result = detector.check(reference)

    assert isinstance(result, DriftResult)
    assert not result.is_drift and result.drifted_features == []
    assert result.window_size == result.reference_size == 400
    assert result.license == "Apache-2.0"
    if name == "mmd":
        assert result.feature_distances == {} and result.status_p_values().keys() == {"mmd"}
    else:
        assert set(result.feature_distances) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("window", "reason", "message"),
    [
        (np.full((5, 3), np.nan), "non-finite", "feature 'a' has 5 NaN/inf"),
        (np.array([[0.0, np.inf, 1.0]]), "non-finite", "feature 'b'"),
        (np.zeros((5, 4)), "shape", "4 columns, expected 3"),
        (np.zeros(5), "shape", "got shape (5,)"),
        (np.zeros((2, 3, 1)), "shape", "2-D"),
        (np.zeros((0, 3)), "empty", "no rows"),
        ([["x", 1, 2]], "type", "non-numbers"),
        ([[1, 2], [3]], "shape", "2-D"),
        (pd.DataFrame({"a": [1.0], "c": [2.0]}), "missing-feature", "['b']"),
    ],
)
@pytest.mark.parametrize("name", [*SCIPY_DETECTORS[:4], "mmd"])
def test_bad_windows_are_rejected_with_a_reason(
    name: str, reference: np.ndarray, window: object, reason: str, message: str
) -> None:
    detector = create_detector(name).fit(reference, ["a", "b", "c"])

    with pytest.raises(InvalidWindowError) as caught:
        detector.check(window)  # type: ignore[arg-type]

    assert caught.value.reason == reason
    assert message in str(caught.value)


def test_rejected_window_does_not_disturb_the_next_check(reference: np.ndarray) -> None:
    detector = create_detector("ks").fit(reference)
    before = detector.check(reference[:100])
    with pytest.raises(InvalidWindowError):
        detector.check(np.full((100, 3), np.nan))
    assert detector.check(reference[:100]) == before


def test_dataframe_windows_are_matched_by_column_name(reference: np.ndarray) -> None:
    detector = create_detector("ks").fit(pd.DataFrame(reference, columns=["a", "b", "c"]))
    shuffled = pd.DataFrame(reference[:, ::-1], columns=["c", "b", "a"]).assign(extra=1)

    result = detector.check(shuffled)

    assert detector.feature_names == ("a", "b", "c")
    assert not result.is_drift and result.feature_p_values["a"] == pytest.approx(1.0)


def test_reference_rows_with_nulls_are_dropped_and_counted(reference: np.ndarray) -> None:
    dirty = reference.copy()
    dirty[:7, 0] = np.nan

    detector = create_detector("ks").fit(dirty)

    assert detector.reference_size == 393
    assert detector.reference_rows_dropped == 7


def test_string_categories_and_unseen_categories() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 1000)})
    detector = create_detector("chi2").fit(reference, categorical={"colour"})

    same = detector.check(pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 300)}))
    new = detector.check(pd.DataFrame({"colour": rng.choice(["red", "purple"], 300)}))

    assert not same.is_drift
    assert new.is_drift and new.drifted_features == ["colour"]
    with pytest.raises(InvalidWindowError) as caught:
        detector.check(pd.DataFrame({"colour": ["red", None]}))
    assert caught.value.reason == "null"


def test_ks_refuses_categorical_features(reference: np.ndarray) -> None:
    with pytest.raises(DetectorConfigError, match="tabular"):
        create_detector("ks").fit(reference, ["a", "b", "c"], {"c"})
    with pytest.raises(DetectorConfigError, match=r"\['z'\]"):
        create_detector("tabular").fit(reference, ["a", "b", "c"], {"z"})


def test_psi_reports_distances_not_p_values(reference: np.ndarray) -> None:
    detector = create_detector("psi", threshold=0.1).fit(reference)
    shifted = reference[:200] + np.array([0.0, 0.0, 1.0])

    result = detector.check(shifted)

    assert result.threshold_kind == "distance" and result.threshold == 0.1
    assert result.feature_p_values == {} and result.p_value is None
    assert result.drifted_features == ["f2"]
    assert result.distance is not None
    assert result.feature_distances["f2"] == result.distance > 0.1


def test_prediction_drift_accepts_a_vector_of_scores() -> None:
    rng = np.random.default_rng(2)
    detector = create_detector("prediction").fit(rng.uniform(size=2000), ["score"])

    result = detector.check(rng.uniform(size=300) ** 2)

    assert result.is_drift and result.status_p_values().keys() == {"score"}


def test_corrections_threshold_and_window_p_value() -> None:
    p = np.array([0.001, 0.02, 0.03, 0.5])

    bonferroni = correct(p, 0.05, "bonferroni")
    fdr = correct(p, 0.05, "fdr")
    none = correct(p, 0.05, "none")

    assert bonferroni.threshold == 0.0125 and bonferroni.drifted.tolist() == [1, 0, 0, 0]
    assert bonferroni.window_p_value == pytest.approx(0.004)
    # BH: sorted p_k < 0.05 k / 4 holds up to k = 3 (0.03 < 0.0375).
    assert fdr.threshold == pytest.approx(0.0375) and fdr.drifted.tolist() == [1, 1, 1, 0]
    assert fdr.window_p_value == pytest.approx(0.004)
    assert none.threshold == 0.05 and none.drifted.sum() == 3


def test_fdr_detector_flags_at_least_what_bonferroni_flags(reference: np.ndarray) -> None:
    window = reference[:150] + np.array([0.25, 0.3, 0.0])
    strict = create_detector("ks", correction="bonferroni").fit(reference).check(window)
    fdr = create_detector("ks", correction="fdr").fit(reference).check(window)

    assert set(strict.drifted_features) <= set(fdr.drifted_features)
    assert fdr.correction == "fdr"


def test_result_is_json_serialisable_for_status(reference: np.ndarray) -> None:
    result = create_detector("ks").fit(reference).check(reference[:50])

    restored = DriftResult.model_validate_json(result.model_dump_json())

    assert restored == result
    assert restored.status_p_values() == result.feature_p_values


def test_mmd_subsamples_large_references_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((3000, 4))
    reference[:, 3] = rng.integers(0, 3, 3000)
    window = rng.standard_normal((200, 4)) + np.array([0.8, 0.0, 0.0, 0.0])
    window[:, 3] = rng.integers(0, 3, 200)

    def run() -> DriftResult:
        detector = create_detector("mmd", max_reference_rows=800, n_permutations=50)
        return detector.fit(reference, categorical={"f3"}).check(window)

    first, second = run(), run()

    assert first == second  # seeded permutations
    assert first.reference_size == 800 and first.is_drift
    assert first.p_value == pytest.approx(1 / 51)
