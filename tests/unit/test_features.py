"""Rows in every form become the same matrix, and bad rows are named precisely."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeld_server.errors import InvalidArgument
from modeld_server.features import FeatureSchema

SCHEMA = FeatureSchema(numeric=("a", "char_freq_["), categorical=("color",), target="y")


class TestInfer:
    def test_numbers_and_bools_are_numeric_the_rest_categorical(self) -> None:
        frame = pd.DataFrame({"n": [1.0, 2.0], "b": [True, False], "s": ["x", "y"], "y": [0, 1]})
        schema = FeatureSchema.infer(frame, ["n", "b", "s"], "y")
        assert (schema.numeric, schema.categorical) == (("n", "b"), ("s",))
        assert schema.columns == ("n", "b", "s")


class TestRecords:
    def test_records_follow_the_model_order_and_map_missing_values(self) -> None:
        rows = [{"color": "red", "char_freq_[": 2, "a": 1.5}, {"a": None, "char_freq_[": 0,
                                                               "color": None}]
        matrix = SCHEMA.matrix_from_records(rows)
        assert matrix[0].tolist() == [1.5, 2.0, "red"]
        assert math.isnan(matrix[1][0]) and math.isnan(matrix[1][2])

    def test_the_target_is_ignored_and_unknown_columns_refused(self) -> None:
        row = {"a": 1, "char_freq_[": 2, "color": "red", "y": 1}
        assert SCHEMA.matrix_from_records([row]).shape == (1, 3)
        with pytest.raises(InvalidArgument, match=r"rows\[0\] has column 'z'"):
            SCHEMA.matrix_from_records([{**row, "z": 0}])

    def test_unknown_columns_name_the_option_that_skips_them(self) -> None:
        row = {"a": 1, "char_freq_[": 2, "color": "red", "id": 7}
        with pytest.raises(InvalidArgument) as err:
            SCHEMA.matrix_from_records([row])
        assert err.value.message == (
            "rows[0] has column 'id', which is not a feature of this model (set "
            "ignore_extra_columns, or --ignore-extra-columns, to skip such columns)")

    def test_every_unknown_column_is_named_sorted(self) -> None:
        row = {"ts": "x", "a": 1, "char_freq_[": 2, "color": "red", "id": 7}
        with pytest.raises(InvalidArgument) as err:
            SCHEMA.matrix_from_records([row])
        assert err.value.message.startswith(
            "rows[0] has columns 'id', 'ts', which are not features of this model (set ")

    def test_unknown_columns_are_skipped_when_asked(self) -> None:
        row = {"id": 7, "a": 1, "char_freq_[": 2, "color": "red", "ts": "2024-01-01"}
        assert SCHEMA.matrix_from_records([row], ignore_extra=True)[0].tolist() == [
            1.0, 2.0, "red"]

    @pytest.mark.parametrize("ignore_extra", [False, True])
    def test_every_missing_column_is_named_at_once(self, ignore_extra: bool) -> None:
        with pytest.raises(InvalidArgument) as err:
            SCHEMA.matrix_from_records([{"char_freq_[": 2}], ignore_extra=ignore_extra)
        assert err.value.message == (
            "rows[0] has no columns 'a', 'color' (2 of the model's 3 features)")

    def test_a_row_as_long_as_the_features_but_with_another_key_is_refused(self) -> None:
        with pytest.raises(InvalidArgument, match=r"rows\[0\] has column 'id'"):
            SCHEMA.matrix_from_records([{"a": 1, "char_freq_[": 2, "id": 3}])
        with pytest.raises(InvalidArgument, match=r"rows\[0\] has no column 'color'$"):
            SCHEMA.matrix_from_records([{"a": 1, "char_freq_[": 2, "id": 3}],
                                       ignore_extra=True)

    def test_integral_floats_and_ints_name_the_same_category(self) -> None:
        rows = [{"a": 0, "char_freq_[": 0, "color": 3}, {"a": 0, "char_freq_[": 0, "color": 3.0}]
        matrix = SCHEMA.matrix_from_records(rows)
        assert matrix[0][2] == matrix[1][2] == "3"

    @given(st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.floats(),
                                                          st.text(max_size=3)), max_size=5))
    def test_any_record_is_a_matrix_or_invalid_argument(self, row: dict[str, object]) -> None:
        try:
            SCHEMA.matrix_from_records([row])
        except InvalidArgument as exc:
            assert "rows[0]" in exc.message


class TestDense:
    numeric = FeatureSchema(numeric=("a", "b", "c"), categorical=())

    def test_columns_in_any_order_give_the_same_matrix(self) -> None:
        straight = self.numeric.matrix_from_dense(["a", "b", "c"], [1, 2, 3, 4, 5, 6])
        shuffled = self.numeric.matrix_from_dense(["c", "a", "b"], [3, 1, 2, 6, 4, 5])
        np.testing.assert_array_equal(straight, shuffled)
        assert straight.dtype == np.float64 and straight.shape == (2, 3)

    def test_dense_equals_records(self) -> None:
        records = self.numeric.matrix_from_records([{"a": 1, "b": 2, "c": 3}])
        np.testing.assert_array_equal(records, self.numeric.matrix_from_dense(["a", "b", "c"],
                                                                              [1, 2, 3]))

    @pytest.mark.parametrize(("columns", "values", "message"), [
        (["a", "b"], [1, 2], "missing ['c'], unknown []"),
        (["a", "b", "b"], [1, 2, 3], "must name each of the model's 3 features once"),
        (["a", "b", "c"], [1, 2], "2 values, not a multiple of 3 columns"),
    ])
    def test_bad_dense_rows(self, columns: list[str], values: list[float], message: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            self.numeric.matrix_from_dense(columns, values)
        assert message in err.value.message

    def test_categorical_models_refuse_dense_rows_naming_the_missing_column(self) -> None:
        with pytest.raises(InvalidArgument) as err:
            SCHEMA.matrix_from_dense(["a", "char_freq_["], [1, 2])
        assert err.value.message == ("dense.columns lacks 1 of the model's 3 features: "
                                     "'color' (categorical)")

    def test_the_target_column_is_ignored_as_in_records(self) -> None:
        """Rows copied from the training file, label included, predict as they are."""
        schema = FeatureSchema(numeric=("a", "b"), categorical=(), target="y")
        matrix = schema.matrix_from_dense(["y", "b", "a"], [9, 2, 1, 8, 4, 3])
        assert matrix.tolist() == [[1.0, 2.0], [3.0, 4.0]]

    def test_the_target_still_counts_once(self) -> None:
        schema = FeatureSchema(numeric=("a",), categorical=(), target="y")
        with pytest.raises(InvalidArgument, match="must name each of the model's 1 features"):
            schema.matrix_from_dense(["a", "y", "y"], [1, 2, 3])

    def test_long_unknown_columns_are_cut(self) -> None:
        with pytest.raises(InvalidArgument) as err:
            self.numeric.matrix_from_dense(["a", "b", "c", "z" * 5000], [1, 2, 3, 4])
        assert err.value.message == (
            "dense.columns must name each of the model's 3 features once; missing [], "
            f"unknown [{'z' * 80!r}... (5000 characters)]")

    def test_every_missing_column_is_named(self) -> None:
        """A client that sent one of 57 columns learns all 56 it must add, in one message."""
        schema = FeatureSchema(numeric=tuple(f"f{i}" for i in range(57)), categorical=())
        with pytest.raises(InvalidArgument) as err:
            schema.matrix_from_dense(["f0"], [1.0])
        every = ", ".join(f"'f{i}'" for i in range(1, 57))
        assert err.value.message == (
            "dense.columns must name each of the model's 57 features once; missing "
            f"[{every}], unknown []")

    def test_a_huge_list_of_missing_columns_is_cut_to_fit_a_trailer(self) -> None:
        """The message travels in grpc-message, which clients cap at 8 KiB."""
        schema = FeatureSchema(numeric=tuple(f"feature_{i:05d}" for i in range(5000)),
                               categorical=())
        with pytest.raises(InvalidArgument) as err:
            schema.matrix_from_dense(["feature_00000"], [1.0])
        assert len(err.value.message) < 2200
        assert err.value.message.endswith("'feature_00117', ... (4882 more)], unknown []")

    def test_extra_columns_are_skipped_when_asked(self) -> None:
        matrix = self.numeric.matrix_from_dense(["id", "c", "b", "a"], [7, 3, 2, 1],
                                                ignore_extra=True)
        assert matrix.tolist() == [[1.0, 2.0, 3.0]]

    def test_extra_columns_do_not_hide_missing_ones(self) -> None:
        with pytest.raises(InvalidArgument) as err:
            self.numeric.matrix_from_dense(["id", "a"], [7, 1], ignore_extra=True)
        assert err.value.message == ("dense.columns must name each of the model's 3 features "
                                     "once; missing ['b', 'c'], unknown []")

    def test_a_categorical_model_names_the_missing_columns(self) -> None:
        """A CLI user whose file lacks the categorical column sent dense rows unawares."""
        schema = FeatureSchema(numeric=("size", "weight"), categorical=("color", "shape"))
        with pytest.raises(InvalidArgument) as err:
            schema.matrix_from_dense(["size"], [1.0])
        assert err.value.message == (
            "dense.columns lacks 3 of the model's 4 features: 'weight', 'color' (categorical), "
            "'shape' (categorical)")

    def test_a_categorical_model_given_every_column_as_numbers_asks_for_records(self) -> None:
        schema = FeatureSchema(numeric=("size",), categorical=("color",))
        with pytest.raises(InvalidArgument) as err:
            schema.matrix_from_dense(["size", "color"], [1.0, 2.0])
        assert err.value.message == (
            "dense rows carry numbers only, but this model has categorical columns (color): "
            "send them as records (strings)")


class TestFinite:
    """Infinity is refused, naming where; NaN and null stay missing values."""

    numeric = FeatureSchema(numeric=("a", "b"), categorical=())

    @pytest.mark.parametrize(("value", "shown"), [(math.inf, "inf"), (-math.inf, "-inf")])
    def test_dense_infinity_names_row_and_column(self, value: float, shown: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            self.numeric.matrix_from_dense(["b", "a"], [1, 2, 3, value])
        assert err.value.message == (f"dense row 1 column 'a' is {shown}: numbers must be "
                                     "finite (send NaN or null for a missing value)")

    def test_records_infinity_names_row_and_column(self) -> None:
        rows = [{"a": 1, "b": 2}, {"a": 1, "b": -math.inf}]
        with pytest.raises(InvalidArgument) as err:
            self.numeric.matrix_from_records(rows)
        assert err.value.message == ("rows[1].b is -inf: numbers must be finite "
                                     "(send NaN or null for a missing value)")

    def test_categorical_models_check_their_numbers_too(self) -> None:
        row = {"a": math.inf, "char_freq_[": 0, "color": "red"}
        with pytest.raises(InvalidArgument, match=r"^rows\[0\]\.a is inf: numbers must be finite"):
            SCHEMA.matrix_from_records([row])

    def test_an_int_beyond_the_float_range_is_infinite(self) -> None:
        with pytest.raises(InvalidArgument, match=r"^rows\[0\]\.a is inf"):
            self.numeric.matrix_from_records([{"a": 10**400, "b": 0}])

    def test_nan_null_and_the_largest_doubles_pass(self) -> None:
        matrix = self.numeric.matrix_from_records([{"a": None, "b": math.nan},
                                                   {"a": 1.7e308, "b": -1.7e308}])
        assert np.isnan(matrix[0]).all() and matrix[1].tolist() == [1.7e308, -1.7e308]
        assert np.isnan(self.numeric.matrix_from_dense(["a", "b"], [math.nan] * 2)).all()

    def test_a_long_string_value_is_quoted_short(self) -> None:
        with pytest.raises(InvalidArgument) as err:
            self.numeric.matrix_from_records([{"a": "x" * 100_000, "b": 0}])
        assert err.value.message == ("rows[0].a must be a number or null, got str "
                                     f"{'x' * 80!r}... (100000 characters)")
