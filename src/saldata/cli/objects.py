"""``saldata objects OUT --coco FILE --visual-genome DIR``: object annotations into the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, SaldataError
from saldata.words import plural

SHOWN_REJECTED = 5


def objects(
    out: OutArg,
    coco: Annotated[
        Path | None,
        typer.Option("--coco", metavar="FILE", help="A COCO instances file, e.g. annotations/instances_val2014.json."),
    ] = None,
    visual_genome: Annotated[
        Path | None,
        typer.Option(
            "--visual-genome", metavar="DIR", help="The Visual Genome folder holding image_data.json and objects.json."
        ),
    ] = None,
    storage_option: StorageOptions = None,
) -> None:
    """Add COCO and/or Visual Genome object annotations to OUT's catalog: the objects table and its masks.

    Annotations join the images by COCO id (SALICON file names, Visual Genome's coco_id) or by Visual
    Genome id, and are placed at the stored size. A run replaces the rows of the sources it is given
    and keeps the others; one that cannot be placed is reported, never guessed.
    """
    from saldata.objects.build import add_objects
    from saldata.objects.table import objects_record_path
    from saldata.schemas.catalog import OBJECTS
    from saldata.storage.os_errors import write_failure

    try:
        where = location(out, storage_option)
        report = add_objects(where, coco=coco, visual_genome=visual_genome)
    except SaldataError as exc:
        fail(exc)
    except OSError as exc:  # a full disk, a read-only OUT: the old record, and so the old tables, stand
        fail(write_failure(exc, Path(str(out))), code=FAILURE)
    for result in report.results:
        images = len({row["idx"] for row in result.rows})
        typer.echo(
            f"{result.source}: {plural(len(result.rows), 'object')} placed on {plural(images, 'image')}; "
            f"{plural(result.n_rejected, 'annotation')} rejected; "
            f"{plural(result.not_in_output, 'annotation')} of images not in this output"
        )
        for rejected in result.rejected[:SHOWN_REJECTED]:
            typer.echo(
                f"  rejected  object {rejected['object_id']} ({rejected['image']}, idx {rejected['idx']}): "
                f"{rejected['reason']}"
            )
        if result.n_rejected > SHOWN_REJECTED:
            typer.echo(f"  ... {result.n_rejected - SHOWN_REJECTED} more, listed in {objects_record_path(where)}")
    total = report.record.rows_of(OBJECTS.name)
    typer.echo(
        f"committed: {plural(total, 'object')} in the objects table, every source's (record: {objects_record_path(where)})"
    )
