"""saldata: language-driven saliency data, extracted from vision-language models at scale."""

__version__ = "0.1.0"


def open(out, storage_options: dict | None = None):  # noqa: A001 (mirrors zarr.open; imports stay lazy)
    """Open an extraction output: ``saldata.open("runs/demo").select(split="val").arrays``.

    ``out`` is a folder or a URL (``s3://bucket/prefix``); ``storage_options`` go to its fsspec
    filesystem, e.g. ``{"endpoint_url": "http://host:9000"}``.
    """
    from saldata.readers.output import Output

    return Output(out, storage_options)
