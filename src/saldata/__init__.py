"""saldata: language-driven saliency data, extracted from vision-language models at scale."""

__version__ = "0.1.0"
