"""`deitkit serve`: the online endpoint locally, on the same server Azure ML runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Packaged model folder (deitkit package, or Azure's catalog MLflow model), checkpoint "
    "folder, or a folder holding one.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5001,
    show_default=True,
    help="TCP port on 127.0.0.1.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; each loads its own copy of the model.",
)
def serve(model_dir: Path, port: int, workers: int) -> None:
    """Serve a model on 127.0.0.1 with azureml-inference-server-http until stopped (Ctrl-C).

    GET / answers "Healthy"; POST /score takes {"input_data": ...} or MLflow's request forms.
    Limits come from DEITKIT_MAX_BODY_BYTES, DEITKIT_MAX_IMAGES, DEITKIT_MAX_IMAGE_PIXELS,
    DEITKIT_MAX_REQUEST_PIXELS, DEITKIT_URL_MAX_BYTES, DEITKIT_URL_TIMEOUT and
    DEITKIT_ALLOW_URLS; connections from DEITKIT_SERVER_THREADS and DEITKIT_READ_TIMEOUT (see
    docs/serving.md).
    """
    from deitkit.serving.server import run_server

    run_server(model_dir, port, workers=workers)


if __name__ == "__main__":
    # `python -m deitkit.cli.serve` (what LocalServer runs): user errors as the group shows them.
    from deitkit.cli.process import skip_final_collection
    from deitkit.errors import DeitkitError

    try:
        serve()
    except DeitkitError as err:
        click.echo(f"error: {err}", err=True)
        raise SystemExit(2) from None
    finally:
        # gunicorn ends the master and each forked worker by raising SystemExit through here.
        skip_final_collection()
