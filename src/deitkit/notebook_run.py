"""What the sample notebooks share: the target check, a fresh work folder, data, Azure calls."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deitkit.errors import ConfigError, DeitkitError
from deitkit.workdir import fresh_folder

TARGETS = ("local", "azure")
# The same marker the CLI samples (samples/common.sh) leave, so either may replace the other's.
MARKER = ".deitkit-sample-run"
VALIDATION_FRACTION = 0.2
# Where Azure's own samples download the datasets from (documented in samples/README.md).
FRIDGE_URLS = {
    "multiclass": "https://automlsamplenotebookdata-adcuc7f7bqhhh8a4.b02.azurefd.net/"
    "image-classification/fridgeObjects.zip",
    "multilabel": "https://automlsamplenotebookdata-adcuc7f7bqhhh8a4.b02.azurefd.net/"
    "image-classification/multilabelFridgeObjects.zip",
}


class AzureCommandError(DeitkitError):
    """A `deitkit azure` command a sample ran failed; the message is the command's own."""


@dataclass(frozen=True)
class SampleRun:
    """One run of a sample notebook: where it writes and which target it talks to."""

    target: str
    work_dir: Path
    workspace_flags: tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def local(self) -> bool:
        return self.target == "local"

    def azure(self, command: str, *args: str, dry_run: bool | None = None) -> str:
        """Run `deitkit azure COMMAND ARGS` with this run's workspace; print and return its output.

        Commands that create something take --dry-run when the run is a dry run.

        Raises:
            AzureCommandError: it failed; the message is what it printed on stderr.
        """
        dry = self.dry_run if dry_run is None else dry_run
        argv = [command, *args, *self.workspace_flags, *(["--dry-run"] if dry else [])]
        done = subprocess.run(
            [sys.executable, "-m", "deitkit.cli.main", "azure", *argv],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise AzureCommandError(f"deitkit azure {command}: {done.stderr.strip()}")
        print(done.stdout, end="")
        return done.stdout

    def upload_data(self, data, name: str) -> tuple[str, str]:
        """Register `prepare_data`'s folder in the workspace (`deitkit azure data upload`).

        The images become the data asset NAME-images, the MLTables (re-pointed at its
        azureml:// URLs) NAME-training and NAME-validation, as Azure's samples upload them.

        Returns:
            The training and validation references for `deitkit azure finetune`; on a dry
            run, nothing is registered and they are `azureml:NAME-training@latest`, ...
        """
        output = self.azure("data", "upload", str(data.out_dir), "--name", name)
        if self.dry_run:
            return f"azureml:{name}-training@latest", f"azureml:{name}-validation@latest"
        printed = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
        return printed["training_data"], printed["validation_data"]


def start(
    name: str,
    *,
    target: str,
    work_dir: str | Path | None = None,
    subscription: str = "",
    resource_group: str = "",
    workspace: str = "",
    dry_run: bool = False,
) -> SampleRun:
    """Check the parameters, then make a fresh work folder (default `sample-output/NAME`).

    With target `azure` the workspace is checked first (no network): a missing value or a
    template placeholder such as `<SUBSCRIPTION_ID>` stops the sample before it does anything.

    Raises:
        ConfigError: an unknown target, an unusable workspace, or a work folder that is not
            an earlier sample's.
    """
    if target not in TARGETS:
        raise ConfigError(f"TARGET must be one of {', '.join(TARGETS)}, got {target!r}")
    flags: tuple[str, ...] = ()
    if target == "azure":
        from deitkit.azure.workspace import resolve_workspace

        found = resolve_workspace(
            subscription=subscription, resource_group=resource_group, workspace=workspace
        )
        flags = (
            "--subscription",
            found.subscription_id,
            "--resource-group",
            found.resource_group,
            "--workspace",
            found.workspace_name,
        )
    folder = fresh_folder(
        Path(work_dir or Path("sample-output") / name), marker=MARKER, what="a sample's output"
    )
    print(f"{name}: TARGET={target}, outputs in {folder}")
    return SampleRun(target, folder, flags, dry_run)


def prepare_data(run: SampleRun, kind: str, fridge_zip: str | Path = ""):
    """`WORK_DIR/data`: images, JSONL annotations and MLTable folders, ready for either target.

    From `fridge_zip` (Azure's fridgeObjects.zip or multilabelFridgeObjects.zip, downloaded
    from FRIDGE_URLS) when given, else from the digits sample. `kind` is multiclass or
    multilabel. Returns `deitkit.data.importer.ImportResult`.
    """
    from deitkit.data.digits import write_digits, write_digits_multilabel
    from deitkit.data.importer import import_dataset

    if kind not in FRIDGE_URLS:
        raise ConfigError(f"kind must be multiclass or multilabel, got {kind!r}")
    out = run.work_dir / "data"
    if fridge_zip:
        result = import_dataset(fridge_zip, out)
    else:
        sample = run.work_dir / "sample"
        write = write_digits if kind == "multiclass" else write_digits_multilabel
        result = import_dataset(write(sample), out, split=VALIDATION_FRACTION)
    print(
        f"{result.n_train} training and {result.n_validation} validation images, "
        f"{len(result.labels)} labels ({result.task}); MLTable folders in {out}"
    )
    return result


def show_report(path: str | Path, sections: Sequence[str] | None = None) -> None:
    """Show the key figures of an evaluation report (report.html) inline in the notebook."""
    from IPython.display import HTML, display

    from deitkit.report.excerpt import KEY_SECTIONS, report_excerpt

    print(f"the whole report: {path}")
    display(HTML(report_excerpt(path, sections or KEY_SECTIONS)))
