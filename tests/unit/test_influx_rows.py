"""query_rows: the one reading of an InfluxQL JSON answer."""

import pytest

from farmwatch_shared.influx import InfluxQueryError, query_rows


def test_rows_carry_columns_and_group_by_tags_in_order() -> None:
    answer: dict[str, object] = {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "name": "water_level",
                        "tags": {"sensor": "a"},
                        "columns": ["time", "value"],
                        "values": [[1, 50.0], [2, 49.5]],
                    },
                    {
                        "name": "water_level",
                        "tags": {"sensor": "b"},
                        "columns": ["time", "value"],
                        "values": [[1, 10.0]],
                    },
                ],
            },
            {"statement_id": 1},
        ]
    }
    assert query_rows(answer) == [
        {"time": 1, "value": 50.0, "sensor": "a"},
        {"time": 2, "value": 49.5, "sensor": "a"},
        {"time": 1, "value": 10.0, "sensor": "b"},
    ]


def test_a_missing_database_is_no_rows_and_other_errors_raise() -> None:
    assert query_rows({"results": [{"error": "database not found: farmwatch"}]}) == []
    with pytest.raises(InfluxQueryError, match="undefined"):
        query_rows({"results": [{"error": "error parsing query: undefined"}]})
