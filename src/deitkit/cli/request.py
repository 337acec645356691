"""`deitkit request`: write a /score request body for image files (what curl or az ml sends)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deitkit.client_requests import FORMS


@click.command("request")
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--form",
    type=click.Choice(FORMS),
    default="input_data",
    show_default=True,
    help="input_data: the model card's split form; list: ranked labels per image; or MLflow's.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="params.threshold: multilabel labels under it are left out (default: the model's).",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=None,
    help="params.top_k: the K most probable labels per image (docs/serving.md).",
)
@click.option(
    "--format",
    "answer_format",
    type=click.Choice(["records"]),
    default=None,
    help="records: ask for the answer Azure's catalog deployments give, "
    '[{"0": {"label", "score"}, ...}] (docs/serving.md).',
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
def request(
    images: tuple[Path, ...],
    form: str,
    threshold: float | None,
    top_k: int | None,
    answer_format: str | None,
    output: Path | None,
) -> None:
    """Write the JSON body that scores IMAGES on an online endpoint (local or Azure).

    For example: deitkit request a.jpg b.jpg --output request.json, then
    curl -H 'Content-Type: application/json' --data @request.json http://127.0.0.1:5001/score
    or az ml online-endpoint invoke --request-file request.json.
    """
    from deitkit.client_requests import request_body

    given = (("threshold", threshold), ("top_k", top_k), ("format", answer_format))
    params = {k: v for k, v in given if v is not None}
    text = json.dumps(request_body(images, form=form, params=params)) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote a {form} request with {len(images)} image(s) to {output}")
