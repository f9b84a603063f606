"""Which store rows of an image make its maps: one convention, shared by the exports and ``evaluate``.

An image's per-token arrays hold one row per decoding step: row r (0 <= r < ``n_tokens``) is the
step that produced generated token r, and, when generation ended with EOS
(``images.ended_with_eos``), row ``n_tokens`` is the step that produced the EOS.

- ``research`` (the default everywhere): rows 1 to ``n_tokens - 1``, then row ``n_tokens`` when
  the image ended with EOS. The "Language-driven Visual Saliency Prediction" research dropped
  generated token 0 (a newline) and kept the EOS step as its last row; ``--format language-att``
  always holds these rows, ``--format pysaliency`` and ``saldata evaluate`` do by default.
- ``all-tokens``: rows 0 to ``n_tokens - 1``, every generated token and no EOS step (what
  ``--format pysaliency`` and ``evaluate`` averaged before the research's rows were the default).

A word's rows are its tokens' rows (``words.first_position`` to ``last_position``) that the
convention keeps: under ``research`` a word loses token 0, and a word made only of token 0 has
no rows, so no map. The EOS row belongs to no word: it counts in the description only.
"""

from __future__ import annotations

from saldata.errors import ConfigError

ROWS_RESEARCH = "research"
ROWS_ALL_TOKENS = "all-tokens"
ROW_CONVENTIONS = (ROWS_RESEARCH, ROWS_ALL_TOKENS)


def trainer_rows(n_tokens: int, ended_with_eos: bool | None) -> range:
    """The research's rows (``research``): generated tokens 1.., then the step that produced EOS, if one did.

    The research dropped generated token 0 (a newline) and kept the EOS step as its last row; in
    the store that step is row ``n_tokens`` (``images.ended_with_eos``).
    """
    return range(1, n_tokens + bool(ended_with_eos))


def all_token_rows(n_tokens: int, ended_with_eos: bool | None = None) -> range:
    """``all-tokens``: every generated token's row, 0 to ``n_tokens - 1``; never the EOS step."""
    return range(0, n_tokens)


CONVENTIONS = {ROWS_RESEARCH: trainer_rows, ROWS_ALL_TOKENS: all_token_rows}


def check_convention(name: str | None) -> str:
    """The convention ``name`` names (None: ``research``), or a ConfigError listing them."""
    if name is None:
        return ROWS_RESEARCH
    if name not in CONVENTIONS:
        raise ConfigError(f"--rows must be one of {', '.join(ROW_CONVENTIONS)}, not {name!r}.")
    return name


def image_rows(convention: str, n_tokens: int, ended_with_eos: bool | None) -> range:
    """The store rows of an image's description under ``convention``."""
    return CONVENTIONS[check_convention(convention)](int(n_tokens), ended_with_eos)


def word_rows(rows: range, first_position: int, last_position: int) -> range:
    """A word's rows: its tokens' positions (inclusive) that ``rows`` keeps; empty when none is.

    The EOS row (``n_tokens``) is never a token's position, so no word has it.
    """
    return range(max(first_position, rows.start), min(last_position + 1, rows.stop))
