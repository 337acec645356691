"""`deitkit finetune --config FILE` (training/config_file.py, cli/finetune.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from deitkit.cli.main import cli
from deitkit.errors import ConfigError
from deitkit.tasks import Task
from deitkit.training.config import FinetuneConfig, resolve
from deitkit.training.config_file import read_config_file


@pytest.fixture
def seen(monkeypatch) -> list[FinetuneConfig]:
    """The FinetuneConfig each `deitkit finetune` hands the run (which then stops)."""
    import deitkit.training.run as run_module

    configs: list[FinetuneConfig] = []

    def stop(config, **_):
        configs.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "finetune", stop)
    return configs


def _finetune(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["finetune", *args], env=env)


def test_yaml_keys_are_field_names_or_the_flags_spelling(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nlearning-rate: 1.0e-3\ndeepspeed: ds.json\nearly_stopping: true\n")
    assert read_config_file(path) == {
        "model": "m",
        "learning_rate": 1e-3,
        "deepspeed_config": "ds.json",
        "early_stopping": True,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rat: 0.1\n", "unknown key 'learning_rat'; did you mean 'learning_rate'?"),
        ("overwrite: true\n", "unknown key 'overwrite'"),
        ("seed: 1\nlearning_rate: 1\nlearning-rate: 2\n", "'learning-rate' sets learning_rate"),
        ("- model\n", "expected a mapping of option names to values, got list"),
        ("model: [unclosed\n", "not YAML or JSON (line"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"--config {path}: .*") as err:
        read_config_file(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_cli_refuses_an_unknown_key_in_one_line(tmp_path, seen):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": "m", "warmup_step": 3}))
    result = _finetune("--config", str(path))
    assert result.exit_code == 2 and not seen
    assert result.output == (
        f"error: --config {path}: unknown key 'warmup_step'; did you mean 'warmup_steps'?\n"
    )


def test_flags_and_environment_override_the_file(tmp_path, seen):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\ntrain: t\noutput: o\nepochs: 4\nseed: 7\nlearning-rate: 1e-3\n")
    _finetune("--config", str(path), "--epochs", "9", env={"DEITKIT_FINETUNE_SEED": "8"})
    (config,) = seen
    assert (config.epochs, config.seed, config.learning_rate) == (9, 8, 1e-3)
    assert (config.model, config.train, config.output) == ("m", "t", "o")


def test_required_options_may_come_from_the_file_only(tmp_path, seen):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\ntrain: t\n")
    result = _finetune("--config", str(path))
    assert result.exit_code == 2 and "Missing option '--output'" in result.output
    assert not seen


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "task": Task.MULTILABEL,
            "precision": "fp16",
            "validation": "data/val",
            "image_size": 32,
            "teacher": "facebook/deit-tiny-patch16-224",
            "distillation": "soft",
            "tune_thresholds": True,
            "early_stopping": True,
            "augmentations": False,
            "max_steps": 5,
        },
    ],
)
def test_a_runs_saved_config_reproduces_its_resolved_config(tmp_path, seen, changes):
    """finetune_config.json (what `save` writes) → --config → the same resolved config."""
    given = FinetuneConfig(
        model="scratch:deit-tiny", train="data/train", output=str(tmp_path / "run"), **changes
    )
    resolved = resolve(given)
    saved = tmp_path / "finetune_config.json"
    resolved.save(saved)
    assert json.loads(saved.read_text())["deepspeed_config"] is None  # None values travel too

    result = _finetune("--config", str(saved))

    assert result.exit_code == 0, result.output
    (config,) = seen
    assert resolve(config) == resolved
    assert config.to_json() == saved.read_text()  # nothing left for resolve to fill in
    assert dataclasses.asdict(config) == dataclasses.asdict(resolved)
