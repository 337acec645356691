"""Tasks: names, the activation each picks, and how each chooses labels from probabilities."""

from __future__ import annotations

import pytest
import torch

from deitkit.errors import ConfigError
from deitkit.tasks import Task, check_threshold, check_top_k, parse_task

RANKED = [("milk", 0.7), ("can", 0.5), ("carton", 0.2)]


def test_activation_is_softmax_for_multiclass_and_sigmoid_for_multilabel():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    assert torch.equal(Task.MULTICLASS.activate(logits), torch.softmax(logits, dim=-1))
    assert torch.equal(Task.MULTILABEL.activate(logits), torch.sigmoid(logits))


def test_multiclass_chooses_the_top_k_and_ignores_the_threshold():
    assert Task.MULTICLASS.choose(RANKED, threshold=0.9) == ["milk"]
    assert Task.MULTICLASS.choose(RANKED, threshold=5.0, top_k=2) == ["milk", "can"]


def test_multilabel_chooses_labels_at_or_over_the_threshold_at_most_top_k():
    assert Task.MULTILABEL.choose(RANKED, threshold=0.5) == ["milk", "can"]
    assert Task.MULTILABEL.choose(RANKED, threshold=0.0, top_k=1) == ["milk"]
    assert Task.MULTILABEL.choose(RANKED, threshold=1.0) == []


def test_choices_are_checked_threshold_first():
    with pytest.raises(ConfigError, match="threshold must be a number in"):
        Task.MULTILABEL.choose(RANKED, threshold=1.5, top_k=0)
    with pytest.raises(ConfigError, match="top_k must be an integer >= 1, got 0"):
        Task.MULTICLASS.choose(RANKED, threshold=1.5, top_k=0)


def test_parse_task_and_checks_name_the_bad_value():
    assert parse_task("image-classification-multilabel") is Task.MULTILABEL
    with pytest.raises(ConfigError, match="unknown task 'detection'; expected one of"):
        parse_task("detection")
    assert check_threshold(1) == 1.0 and check_top_k(3) == 3
    with pytest.raises(ConfigError, match=r"--threshold must be a number in \[0, 1\], got True"):
        check_threshold(True, name="--threshold")


def test_multilabel_chooses_each_label_at_its_own_threshold():
    per_label = {"milk": 0.8, "can": 0.5, "carton": 0.1}
    assert Task.MULTILABEL.choose(RANKED, threshold=per_label) == ["can", "carton"]
    # top_k keeps the most probable of the chosen, not the chosen among the top k.
    assert Task.MULTILABEL.choose(RANKED, threshold=per_label, top_k=1) == ["can"]
    assert Task.MULTICLASS.choose(RANKED, threshold=per_label) == ["milk"]


def test_per_label_thresholds_are_checked_label_by_label():
    with pytest.raises(ConfigError, match="name no threshold for the label 'carton'"):
        Task.MULTILABEL.choose(RANKED, threshold={"milk": 0.5, "can": 0.5})
    with pytest.raises(ConfigError, match=r"threshold of 'can' must be a number in \[0, 1\]"):
        Task.MULTILABEL.choose(RANKED, threshold={"milk": 0.5, "can": 2, "carton": 0.5})
