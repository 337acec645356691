"""Request forms → images, params and answer shape; answers for each shape; refusals named."""

from __future__ import annotations

import pytest

from deitkit.inference import Prediction
from deitkit.serving.payload import (
    RequestError,
    ScoringRequest,
    Shape,
    format_response,
    parse_request,
)
from deitkit.tasks import Task

LABELS = ["can", "carton", "milk_bottle"]


def parse(body, max_images=64) -> ScoringRequest:
    return parse_request(body, max_images=max_images)


@pytest.mark.parametrize(
    "body, shape",
    [
        ({"input_data": {"columns": ["image"], "index": [0, 1], "data": ["a", "b"]}}, Shape.TABLE),
        ({"input_data": {"columns": ["image"], "data": [["a"], ["b"]]}}, Shape.TABLE),
        ({"input_data": ["a", "b"]}, Shape.RANKED),
        ({"dataframe_split": {"columns": ["image"], "data": [["a"], ["b"]]}}, Shape.MLFLOW),
        (
            {"dataframe_split": {"columns": ["id", "image"], "data": [[7, "a"], [8, "b"]]}},
            Shape.MLFLOW,
        ),
        ({"dataframe_records": [{"image": "a"}, {"image": "b"}]}, Shape.MLFLOW),
        ({"instances": ["a", "b"]}, Shape.MLFLOW),
        ({"instances": [{"image": "a"}, {"image": "b"}]}, Shape.MLFLOW),
        ({"inputs": {"image": ["a", "b"]}}, Shape.MLFLOW),
        ({"inputs": ["a", "b"]}, Shape.MLFLOW),
    ],
)
def test_every_form_yields_its_images_in_order(body, shape):
    request = parse(body)
    assert request.images == ["a", "b"] and request.shape is shape
    assert (request.threshold, request.top_k) == (None, None)


def test_params_are_read_and_checked():
    request = parse({"input_data": ["a"], "params": {"threshold": 0.25, "top_k": 2}})
    assert (request.threshold, request.top_k) == (0.25, 2)
    with pytest.raises(RequestError, match=r"params: threshold must be a number in \[0, 1\]"):
        parse({"input_data": ["a"], "params": {"threshold": 2}})
    with pytest.raises(RequestError, match="params: top_k must be an integer >= 1, got 0"):
        parse({"input_data": ["a"], "params": {"top_k": 0}})
    with pytest.raises(RequestError, match="unknown parameter 'topk'"):
        parse({"input_data": ["a"], "params": {"topk": 1}})
    with pytest.raises(RequestError, match="params must be a JSON object, got a JSON list"):
        parse({"input_data": ["a"], "params": [1]})


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "must be a JSON object .* got a JSON list"),
        ("x", "got a JSON string"),
        ({}, "exactly one of 'input_data', .*got none"),
        ({"input_data": ["a"], "instances": ["a"]}, "got 'input_data', 'instances'"),
        ({"inputdata": ["a"]}, "unknown key 'inputdata'"),
        ({"input_data": []}, "input_data holds no images"),
        ({"input_data": {"columns": ["image"], "data": []}}, "holds no images"),
        ({"input_data": "a"}, "input_data must be a JSON object .* got a JSON string"),
        ({"input_data": {"columns": ["image"]}}, "input_data has no 'data'"),
        ({"input_data": {"columns": ["img"], "data": ["a"]}}, "columns must list 'image'"),
        ({"input_data": {"data": ["a", "b"], "index": [0]}}, "index must be a list as long"),
        ({"input_data": {"data": "ab"}}, "input_data.data must be a list"),
        ({"dataframe_split": {"columns": ["id", "image"], "data": [[1]]}}, "image 0: .*1 values"),
        ({"dataframe_split": {"columns": ["id", "image"], "data": ["a"]}}, "image 0: .*a list"),
        ({"dataframe_records": [{"image": "a"}, {"img": "b"}]}, "image 1: .*an object with"),
        ({"dataframe_records": {"image": "a"}}, "dataframe_records must be a list of objects"),
        ({"instances": {"image": "a"}}, "instances as an object must be"),
        ({"inputs": 3}, "inputs must be a list of images, got a JSON number"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body, message):
    with pytest.raises(RequestError, match=message) as info:
        parse(body)
    assert info.value.status == 400


def test_more_images_than_the_cap_are_refused():
    assert len(parse({"input_data": ["a"] * 3}, max_images=3).images) == 3
    with pytest.raises(RequestError, match="4 images, more than the limit of 3 per request"):
        parse({"input_data": ["a"] * 4}, max_images=3)


def prediction(probs, task=Task.MULTICLASS) -> Prediction:
    return Prediction(list(probs), list(LABELS), task, 0.5)


def test_table_answers_hold_exactly_probs_and_labels():
    request = ScoringRequest(["a", "b"], Shape.TABLE, threshold=0.9, top_k=1)
    answer = format_response(request, [prediction([0.2, 0.5, 0.3]), prediction([0.7, 0.2, 0.1])])
    assert answer == [
        {"probs": [0.2, 0.5, 0.3], "labels": LABELS},
        {"probs": [0.7, 0.2, 0.1], "labels": LABELS},
    ]


def test_ranked_answers_list_labels_best_first_cut_by_top_k():
    predictions = [prediction([0.2, 0.5, 0.3])]
    full = format_response(ScoringRequest(["a"], Shape.RANKED), predictions)
    assert full == [
        [
            {"label": "carton", "score": 0.5},
            {"label": "milk_bottle", "score": 0.3},
            {"label": "can", "score": 0.2},
        ]
    ]
    top = format_response(ScoringRequest(["a"], Shape.RANKED, top_k=1), predictions)
    assert top == [[{"label": "carton", "score": 0.5}]]
    # A threshold does not drop multiclass labels: the ranked list is a distribution.
    kept = format_response(ScoringRequest(["a"], Shape.RANKED, threshold=0.9), predictions)
    assert len(kept[0]) == 3


def test_multilabel_ranked_answers_are_sorted_and_cut_by_an_explicit_threshold():
    predictions = [prediction([0.9, 0.2, 0.6], Task.MULTILABEL)]
    full = format_response(ScoringRequest(["a"], Shape.RANKED), predictions)
    assert [item["label"] for item in full[0]] == ["can", "milk_bottle", "carton"]
    cut = format_response(ScoringRequest(["a"], Shape.RANKED, threshold=0.5), predictions)
    assert cut == [[{"label": "can", "score": 0.9}, {"label": "milk_bottle", "score": 0.6}]]


def test_mlflow_answers_match_the_pyfunc_rows():
    predictions = [prediction([0.9, 0.2, 0.6], Task.MULTILABEL)]
    answer = format_response(ScoringRequest(["a"], Shape.MLFLOW, threshold=0.5), predictions)
    assert answer == {
        "predictions": [
            {"probs": [0.9, 0.2, 0.6], "labels": LABELS, "predicted": ["can", "milk_bottle"]}
        ]
    }
    capped = format_response(ScoringRequest(["a"], Shape.MLFLOW, top_k=1), predictions)
    assert capped["predictions"][0]["predicted"] == ["can"]


# --- params.format "records": the answer Azure's notebooks parse (`[0]["0"]["label"]`) ---------


def test_format_records_is_read_for_every_form_and_anything_else_is_refused():
    for body in ({"input_data": ["a"]}, {"dataframe_records": [{"image": "a"}]}):
        assert parse({**body, "params": {"format": "records"}}).format == "records"
    assert parse({"input_data": ["a"]}).format is None
    with pytest.raises(RequestError, match=r"params: format 'split' is not supported; expected "):
        parse({"input_data": ["a"], "params": {"format": "split"}})


def test_records_answers_key_each_images_ranked_labels_by_rank():
    predictions = [prediction([0.2, 0.5, 0.3]), prediction([0.7, 0.2, 0.1])]
    answer = format_response(
        ScoringRequest(["a", "b"], Shape.RANKED, format="records"), predictions
    )
    assert answer[0] == {
        "0": {"label": "carton", "score": 0.5},
        "1": {"label": "milk_bottle", "score": 0.3},
        "2": {"label": "can", "score": 0.2},
    }
    assert answer[1]["0"] == {"label": "can", "score": 0.7}
    # The table form answers the same records; MLflow's forms wrap them as MLflow's server does.
    table = ScoringRequest(["a", "b"], Shape.TABLE, format="records")
    assert format_response(table, predictions) == answer
    mlflow = ScoringRequest(["a", "b"], Shape.MLFLOW, format="records")
    assert format_response(mlflow, predictions) == {"predictions": answer}
    top = ScoringRequest(["a"], Shape.RANKED, top_k=1, format="records")
    assert format_response(top, predictions[:1]) == [{"0": {"label": "carton", "score": 0.5}}]


def test_records_hold_the_top_five_as_the_pipeline_answers_and_follow_a_threshold():
    labels = [f"l{i}" for i in range(8)]
    many = Prediction([i / 28 for i in range(8)], labels, Task.MULTICLASS, 0.5)
    (record,) = format_response(ScoringRequest(["a"], Shape.RANKED, format="records"), [many])
    assert [record[k]["label"] for k in record] == ["l7", "l6", "l5", "l4", "l3"]
    assert list(record) == ["0", "1", "2", "3", "4"]
    multilabel = [prediction([0.9, 0.2, 0.6], Task.MULTILABEL)]
    cut = ScoringRequest(["a"], Shape.RANKED, threshold=0.5, format="records")
    assert format_response(cut, multilabel) == [
        {"0": {"label": "can", "score": 0.9}, "1": {"label": "milk_bottle", "score": 0.6}}
    ]


# --- per-label thresholds: the ranked answers decide as `predicted` does ------------------------


def tuned(probs) -> Prediction:
    return Prediction(list(probs), list(LABELS), Task.MULTILABEL, 0.5, (0.95, 0.1, 0.7))


def test_per_label_thresholds_cut_ranked_answers_as_predicted_chooses():
    predictions = [tuned([0.9, 0.2, 0.6])]  # can 0.9 < 0.95; carton 0.2 >= 0.1; milk 0.6 < 0.7
    ranked = format_response(ScoringRequest(["a"], Shape.RANKED), predictions)
    assert ranked == [[{"label": "carton", "score": 0.2}]]
    mlflow = format_response(ScoringRequest(["a"], Shape.MLFLOW), predictions)
    assert mlflow["predictions"][0]["predicted"] == ["carton"]
    records = ScoringRequest(["a"], Shape.RANKED, format="records")
    assert format_response(records, predictions) == [{"0": {"label": "carton", "score": 0.2}}]
    # The request's threshold decides every label instead.
    cut = format_response(ScoringRequest(["a"], Shape.RANKED, threshold=0.5), predictions)
    assert cut == [[{"label": "can", "score": 0.9}, {"label": "milk_bottle", "score": 0.6}]]
    every = format_response(ScoringRequest(["a"], Shape.MLFLOW, threshold=0.0), predictions)
    assert every["predictions"][0]["predicted"] == ["can", "milk_bottle", "carton"]
    # The table form answers probabilities only, as before.
    table = format_response(ScoringRequest(["a"], Shape.TABLE), predictions)
    assert table == [{"probs": [0.9, 0.2, 0.6], "labels": LABELS}]
