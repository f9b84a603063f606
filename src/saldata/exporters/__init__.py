"""``saldata export``: an output's committed shards in the file layouts other tools read.

One module per format, each an ``Exporter`` (``base.py``); ``destination.py`` keeps DEST safe
and resumable. ``EXPORTERS`` picks the format by its ``--format`` name.
"""

from __future__ import annotations

from saldata.exporters.base import Exporter, ExportSettings, ExportSummary
from saldata.exporters.language_att import LanguageAttExporter
from saldata.exporters.pysaliency_maps import PysaliencyExporter

EXPORTERS: dict[str, type[Exporter]] = {e.name: e for e in (LanguageAttExporter, PysaliencyExporter)}

__all__ = ["EXPORTERS", "ExportSettings", "ExportSummary", "Exporter"]
