"""Help pages in click's conventions, for every command at once.

typer 0.29's rich help departs from them in two places, both corrected here on typer's own
classes (so no command can be forgotten): a flag is shown with a ``<bool>`` value it does not
take (``--overwrite true`` is then an error), and a required argument appears in the usage
line as ``{out}`` instead of ``OUT``. tests/cli/test_help_text.py walks every command, so a
typer release that changes these hooks fails there rather than in front of a user.
"""

from __future__ import annotations

from typer.core import TyperArgument, TyperOption

_option_type = TyperOption.display_type_rich


def _flag_has_no_type(self: TyperOption, ctx) -> str | None:
    """A flag takes no value, so it shows none (typer's plain-text help already skips it)."""
    if self.is_flag and not self.count:
        return None
    return _option_type(self, ctx)


def _usage_name(self: TyperArgument) -> str:
    """``OUT`` when required, ``[OUT]`` when not, ``...`` when repeated: click's usage line."""
    name = self.metavar or self.name.upper()
    name = name if self.required else f"[{name}]"
    return name if self.nargs == 1 else f"{name}..."


def use_click_conventions() -> None:
    """Install both corrections; idempotent."""
    TyperOption.display_type_rich = _flag_has_no_type
    TyperArgument._usage_display_name = _usage_name
