"""The row convention, stated once (saldata.analysis.rows) and used by every export and by evaluate."""

from __future__ import annotations

import re

import pytest

from saldata.analysis import rows
from saldata.analysis.rows import (
    ROW_CONVENTIONS,
    all_token_rows,
    check_convention,
    image_rows,
    trainer_rows,
    word_rows,
)
from saldata.errors import ConfigError
from saldata.exporters import language_att


def test_research_rows_drop_token_0_and_keep_the_eos_step():
    assert list(trainer_rows(5, False)) == [1, 2, 3, 4]
    assert list(trainer_rows(5, True)) == [1, 2, 3, 4, 5]  # row n_tokens: the step that produced EOS
    assert list(trainer_rows(1, True)) == [1]
    assert list(trainer_rows(0, True)) == []  # EOS at the first step: that step is row 0, which is dropped
    for n, eos in ((0, False), (1, False), (0, None), (1, None)):
        assert list(trainer_rows(n, eos)) == []


def test_all_tokens_rows_are_every_generated_token_and_never_eos():
    assert list(all_token_rows(5, True)) == [0, 1, 2, 3, 4]
    assert list(all_token_rows(5, False)) == [0, 1, 2, 3, 4]
    assert list(all_token_rows(0, True)) == []


def test_one_definition_for_the_trainer_export_and_the_analysis():
    assert language_att.trainer_rows is rows.trainer_rows
    assert image_rows("research", 7, True) == trainer_rows(7, True)
    assert image_rows("all-tokens", 7, True) == all_token_rows(7, True)
    assert ROW_CONVENTIONS == ("research", "all-tokens") and check_convention(None) == "research"


def test_a_word_keeps_the_rows_of_its_tokens_that_the_convention_keeps():
    research = trainer_rows(6, True)  # rows 1..6, row 6 the EOS step
    assert list(word_rows(research, 0, 0)) == []  # a word made only of token 0 has no row
    assert list(word_rows(research, 0, 2)) == [1, 2]  # a word starting at token 0 loses it
    assert list(word_rows(research, 3, 5)) == [3, 4, 5]  # never the EOS row: no token is at position 6
    every = all_token_rows(6, True)
    assert list(word_rows(every, 0, 0)) == [0]
    assert list(word_rows(every, 4, 5)) == [4, 5]


def test_an_unknown_convention_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match=r"--rows must be one of research, all-tokens, not 'first'"):
        check_convention("first")
    with pytest.raises(ConfigError):
        image_rows("eos", 3, True)


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_both_commands_offer_every_convention(command):
    from typer.testing import CliRunner

    from saldata.cli.main import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.output)  # CI may force colour on help
    text = " ".join(plain.replace("│", " ").split())
    assert result.exit_code == 0 and "--rows" in text
    for name in ROW_CONVENTIONS:
        assert f"{name} (" in text, (name, text)
