"""monitoring/: profile bins, PSI and JS against the plain formulas, and the monitor's
buffer, tumbling windows, version resets and once-per-crossing alerts (stepped by hand)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from modeld_server.features import FeatureSchema
from modeld_server.monitoring import profile as profiles
from modeld_server.monitoring.divergence import EPSILON, js_distance, psi
from modeld_server.monitoring.monitor import DriftMonitor
from modeld_server.monitoring.report import DriftReport, Thresholds
from modeld_server.registry.manifest import Manifest
from modeld_server.types import Task


class TestProfile:
    def test_zero_and_missing_have_their_own_bins(self) -> None:
        """77% zeros: the zero bin holds them, the quantile edges come from the rest."""
        values = np.array([0.0] * 77 + [np.nan] * 3 + list(np.linspace(0.1, 2.0, 20)))
        p = profiles.numeric_profile(values)
        assert p["counts"][:2] == [3, 77]
        assert sum(p["counts"][2:]) == 20 and len(p["edges"]) == 19
        assert (p["missing_share"], p["zero_share"]) == (0.03, 0.77)
        assert p["min"] == 0.0 and p["max"] == 2.0

    def test_live_values_use_the_reference_edges(self) -> None:
        """numeric_counts bins with the reference's edges: below, between, at or above."""
        counts = profiles.numeric_counts(np.array([np.nan, 0, 0.5, 1.0, 1.5, 3.0]), [1.0, 2.0])
        assert counts.tolist() == [1, 1, 1, 2, 1]

    def test_categories_keep_top_other_and_missing(self) -> None:
        """Top categories by count, then other and missing counts."""
        p = profiles.categorical_profile(["a", "b", "a", None, math.nan, "a", "b", "c"])
        assert p["categories"][:2] == ["a", "b"]
        assert profiles.categorical_counts(["a", "zzz", None], ["a", "b"]).tolist() == [
            1, 0, 1, 1]


class TestMetrics:
    def test_psi_is_the_textbook_sum(self) -> None:
        """PSI = sum((q - p) ln(q / p)) on shares, an empty bin floored at EPSILON."""
        ref, live = np.array([50, 30, 20, 0]), np.array([20, 30, 40, 10])
        p = np.maximum(ref / 100, EPSILON)
        q = np.maximum(live / 100, EPSILON)
        assert psi(ref, live) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
        assert psi(ref, ref) == 0.0

    def test_js_distance_is_scipys(self) -> None:
        """Jensen-Shannon distance in base 2, as scipy computes it."""
        ref, live = np.array([10, 5, 0, 3]), np.array([1, 5, 7, 0])
        assert js_distance(ref, live) == pytest.approx(jensenshannon(ref, live, base=2))
        assert js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)


@dataclass
class Served:
    """What the monitor reads of a loaded version (a LoadedModel's attributes)."""

    version: int
    manifest: Manifest | dict[str, Any]
    schema: FeatureSchema = field(default_factory=lambda: FeatureSchema(("x",), ()))
    task: Task = Task.REGRESSION
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.manifest, dict):  # written here as the JSON a manifest holds
            self.manifest = Manifest.from_json({"version": self.version, **self.manifest})


def served(version: int = 1) -> Served:
    reference = np.random.default_rng(0).normal(5, 1, 5000)
    return Served(version, {"profile": {
        "features": {"x": profiles.numeric_profile(reference)},
        "output": profiles.numeric_profile(reference)}})


def rows(n: int, shift: float = 0.0, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(5 + shift, 1, (n, 1))


class Alerts:
    def __init__(self) -> None:
        self.reports: list[DriftReport] = []

    def __call__(self, report: DriftReport) -> None:
        self.reports.append(report)


def monitor(alerts: Alerts | None = None, *, rate: float = 1.0, window: int = 1000,
            capacity: int = 10_000) -> DriftMonitor:
    return DriftMonitor(rate=rate, window=window, capacity=capacity, replica="r1",
                        thresholds_for=lambda model: Thresholds(),
                        on_alert=alerts or Alerts(), interval=0)


class TestMonitor:
    def test_windows_tumble_over_sampled_rows(self) -> None:
        """2500 rows in windows of 1000: two reports, 500 rows wait in the third."""
        m, model = monitor(), served()
        x = rows(2500)
        m.offer("m", model, x, x[:, 0])
        reports = m.step()
        assert [r.windows for r in reports] == [1, 2]
        report = m.report("m", 1)
        assert (report.status, report.window_rows, report.sampled, report.dropped,
                report.replica) == ("ok", 500, 2500, 0, "r1")
        assert report.features[0].metric == "psi" and report.features[0].value < 0.1

    def test_a_full_buffer_drops_and_counts(self) -> None:
        """Rows beyond the buffer's capacity are dropped and counted, not queued."""
        m, model = monitor(capacity=1500), served()
        for _ in range(3):
            m.offer("m", model, rows(600), None)
        report = m.report("m", 1)
        assert (report.sampled, report.dropped) == (1800, 600)
        m.step()
        m.offer("m", model, rows(600), None)
        assert m.report("m", 1).dropped == 600  # room again after the step

    def test_sampling_rate_zero_takes_nothing(self) -> None:
        """--monitor-sample 0 turns sampling off."""
        m, model = monitor(rate=0.0), served()
        m.offer("m", model, rows(100), None)
        assert m.report("m", 1).sampled == 0

    def test_sampling_rate_takes_about_that_share(self) -> None:
        """A rate of 0.1 samples about a tenth of the rows, one-row calls included."""
        m, model = monitor(rate=0.1), served()
        for _ in range(2000):
            m.offer("m", model, rows(1), None)
        m.offer("m", model, rows(20_000), None)
        assert 1500 < m.report("m", 1).sampled < 2900

    def test_alert_once_per_crossing(self) -> None:
        """Two shifted windows alert once; after a quiet window the next shift alerts again."""
        alerts = Alerts()
        m, model = monitor(alerts), served()
        for shift in (2.0, 2.0, 0.0, 2.0):
            m.offer("m", model, rows(1000, shift), None)
            m.step()
        assert len(alerts.reports) == 2
        assert alerts.reports[0].alerting == ["x"]

    def test_a_new_version_starts_a_new_window(self) -> None:
        """Rows of version 2 discard version 1's partial window and its alert state."""
        alerts = Alerts()
        m = monitor(alerts)
        m.offer("m", served(1), rows(1000, 2.0), None)
        m.offer("m", served(1), rows(400), None)
        m.step()
        m.offer("m", served(2), rows(1000, 2.0), None)
        m.step()
        assert [r.version for r in alerts.reports] == [1, 2]
        assert m.report("m", 2).window_rows == 0 and m.report("m", 1).status == "pending"

    def test_a_version_without_profile_says_so(self) -> None:
        """Versions trained before profiles existed report no_profile."""
        m, old = monitor(), Served(1, {})
        m.offer("m", old, rows(1000), None)
        m.step()
        assert m.report("m", 1).status == "no_profile"


class TestPolicyThresholds:
    def test_defaults_fill_zeros_and_round_trip(self) -> None:
        """0 means the default; set values survive policy.json."""
        from modeld_server.training.gate import Policy

        policy = Policy(drift=(0.0, 0.4, 0.0, 0.0)).validated()
        assert policy.drift_thresholds() == (0.1, 0.4, 0.1, 0.5)
        assert Policy.from_json(policy.to_json()) == policy
        assert "drift" not in Policy().to_json()

    @pytest.mark.parametrize(("drift", "message"), [
        ((0.0, 0.0, 1.5, 0.0), "policy.drift_js_alert must be between 0 (the default) and 1, "
                               "got 1.5"),
        ((-1.0, 0.0, 0.0, 0.0), "policy.drift_psi_warn must be between 0 (the default) and "
                                "10, got -1"),
        ((0.3, 0.2, 0.0, 0.0), "policy.drift_psi_warn 0.3 is above policy.drift_psi_alert 0.2"),
        ((0.0, 0.0, 0.0, math.nan), "policy.drift_share_alert must be between 0 (the default) "
                                    "and 1, got nan"),
    ])
    def test_bad_thresholds_name_field_and_value(self, drift: tuple[float, float, float, float],
                                                 message: str) -> None:
        from modeld_server.errors import InvalidArgument
        from modeld_server.training.gate import Policy

        with pytest.raises(InvalidArgument) as err:
            Policy(drift=drift).validated()
        assert err.value.message == message


class TestSettings:
    def test_monitor_sample_must_be_a_share(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--monitor-sample 1.5 exits 2 naming the flag and value."""
        from modeld_server.config import load_settings

        with pytest.raises(SystemExit) as exit_info:
            load_settings(["--monitor-sample", "1.5"], env={})
        assert exit_info.value.code == 2
        assert "--monitor-sample must be between 0 and 1, got 1.5" in capsys.readouterr().err
        assert load_settings([], env={"MODELD_MONITOR_WINDOW": "200"}).monitor_window == 200


class TestTimedWindows:
    def test_a_window_open_long_enough_closes_with_its_rows(self) -> None:
        """With window_seconds, a window holding a tenth of its rows closes after that time;
        fewer rows wait; a full window still closes by rows."""
        now = [0.0]
        m = DriftMonitor(rate=1.0, window=1000, capacity=10_000, replica="r1",
                         thresholds_for=lambda model: Thresholds(), interval=0,
                         window_seconds=60, clock=lambda: now[0])
        model = served()
        m.offer("m", model, rows(99), None)
        assert m.step() == []  # the window opens at 0
        now[0] = 61
        assert m.step() == []  # 99 rows < a tenth of 1000
        m.offer("m", model, rows(101), None)
        [report] = m.step()
        assert (report.window_size, report.windows) == (200, 1)
        assert m.report("m", 1).window_rows == 0
        m.offer("m", model, rows(1000), None)
        [full] = m.step()  # at once, by rows
        assert full.window_size == 1000


class TestOutputProfile:
    def test_binary_bins_the_second_class_probability(self) -> None:
        """Ten equal probability bins of classes[1], plus the predicted-class shares."""
        proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.45, 0.55], [0.95, 0.05]])
        p = profiles.output_profile("classification", ["no", "yes"], proba, None)
        assert p["what"] == "probability of class yes"
        assert p["edges"] == profiles.PROBABILITY_EDGES
        assert sum(p["counts"]) == 4 and p["class_shares"] == {"no": 0.5, "yes": 0.5}

    def test_multiclass_counts_predicted_classes(self) -> None:
        """A multiclass model's output is its predicted class, compared by JS distance."""
        proba = np.eye(3)[[0, 0, 1, 2]]
        classes = ["a", "b", "c"]
        p = profiles.output_profile("classification", classes, proba, None)
        assert (p["kind"], p["categories"], p["counts"]) == (
            "categorical", ["a", "b", "c"], [2, 1, 1, 0, 0])
        live = profiles.counts_like(p, profiles.output_values("classification", classes,
                                                              np.eye(3)[[2, 2]], None))
        assert live.tolist() == [0, 0, 2, 0, 0]

    def test_regression_bins_values_by_quantiles(self) -> None:
        """A regressor's values get a numeric profile like a feature's."""
        values = np.arange(1.0, 101.0)
        p = profiles.output_profile("regression", [], None, values)
        assert p["what"] == "predicted value" and sum(p["counts"]) == 100
        assert p["mean"] == pytest.approx(50.5)

    def test_the_monitor_reports_prediction_drift(self) -> None:
        """A binary classifier whose live probabilities all move to 0.95 alerts on the
        prediction, with PSI against its reference histogram."""
        proba = np.column_stack([1 - np.linspace(0, 1, 1000), np.linspace(0, 1, 1000)])
        reference = profiles.output_profile("classification", ["0", "1"], proba, None)
        model = Served(1, {"profile": {"features": {"x": profiles.numeric_profile(
            rows(1000)[:, 0])}, "output": reference}}, task=Task.CLASSIFICATION,
            classes=["0", "1"])
        m = monitor()
        live = np.tile([[0.05, 0.95]], (1000, 1))
        m.offer("m", model, rows(1000), live)
        [report] = m.step()
        assert report.prediction is not None
        expected = psi(np.asarray(reference["counts"]),
                       profiles.counts_like(reference, live[:, 1]))
        assert report.prediction.value == pytest.approx(expected)
        assert (report.prediction.status, report.status) == ("alert", "alert")


class TestSortedCounts:
    @pytest.mark.parametrize("edges", [None, [0.1 * i for i in range(1, 10)], [1.0, 1.0, 2.5],
                                       [2.5, 1.0], [], [0.0]])
    def test_numeric_profile_counts_as_numeric_counts(self, edges: list[float] | None) -> None:
        """Counted from the sorted non-zero values: the bins numeric_counts gives."""
        rng = np.random.default_rng(3)
        for n in range(0, 200, 7):
            values = rng.choice([0.0, -0.0, np.nan, 1.0, 2.5, -3.0], n) * rng.random(n).round(1)
            got = profiles.numeric_profile(values, edges)
            assert got["counts"] == profiles.numeric_counts(values, got["edges"]).tolist()
            if edges is None:
                nonzero = values[~np.isnan(values) & (values != 0)]
                expected = [float(e) for e in np.unique(np.quantile(
                    nonzero, np.linspace(0, 1, profiles.QUANTILE_BINS + 1)[1:-1]))] \
                    if len(nonzero) else []
                assert got["edges"] == expected
