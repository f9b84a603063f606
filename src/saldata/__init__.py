"""saldata: language-driven saliency data, extracted from vision-language models at scale."""

__version__ = "0.1.0"


def open(out):  # noqa: A001 (mirrors zarr.open; imports stay lazy so the CLI starts fast)
    """Open an extraction output: ``saldata.open("runs/demo").select(split="val").arrays``."""
    from saldata.readers.output import Output

    return Output(out)
