"""Every subcommand's --help, rendered as a user sees it, against the presets and for known typos (issue 23)."""

from __future__ import annotations

import re

import pytest

from nsas.cli import SUBCOMMANDS, main

COMMANDS = [[name] for name in SUBCOMMANDS if name != "truth"] + [["truth", "import"], ["truth"]]


def render(capsys, argv: list[str]) -> str:
    """The text ``nsas ARGV --help`` prints (main returns 0 after argparse prints it)."""
    assert main([*argv, "--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return re.sub(r"\s+", " ", out)  # argparse wraps lines: compare words, not layout


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_has_none_of_the_known_typos(capsys, argv):
    text = render(capsys, argv)
    assert "%%" not in text  # a description is not %-formatted: %% prints as is
    assert not re.search(r"\b1 (epochs|seeds|steps|architectures|runs|batches)\b", text)
    # defaults read as the YAML a user would write: none, true, false (not Python's None, True, False)
    assert not re.search(r"default:[^)]*\b(None|True|False)\b", text), re.findall(r"\(default:[^)]*\)", text)


def test_search_help_matches_the_quick_preset(capsys):
    from nsas.search_config import quick_preset

    text = render(capsys, ["search"])
    epochs = quick_preset("nb201", "random")["epochs"]
    nsas_epochs = quick_preset("nb201", "random", {"loss": "nsas"})["epochs"]
    description = text.split(" options: ")[0]
    assert f"{epochs} epochs" in description  # the preset's own number, not a stale one
    for stale in re.findall(r"\b(\d+) epochs and a short selection", description):
        assert int(stale) == epochs
    assert f"quick on nb201: {epochs}, with --loss nsas {nsas_epochs}" in text
    sampling = quick_preset("nb201", "random").get("sampling", "uniform")
    strategy = re.search(r"--strategy \{[^}]*\} (.*?)\(default", text).group(1)
    if sampling != "uniform":  # the default sampling is not uniform: --strategy random must not say it is
        assert "uniform" not in strategy
    assert f"quick on nb201: {sampling})" in text


def test_help_defaults_of_the_search_flags_are_the_presets(capsys):
    """Each 'quick on nb201: X' the help shows is the quick preset's value, written as YAML."""
    from nsas.config import default_repr
    from nsas.search_config import SearchConfig, quick_preset

    text = render(capsys, ["search"])
    preset = quick_preset("nb201", "random")
    shown = dict(re.findall(r" --([a-z-]+)[^()]*?\(default: from --preset; quick on nb201: ([^,)]+)", text))
    assert shown, "no preset defaults found in the help"
    defaults = {f.name: f.default for f in SearchConfig.__dataclass_fields__.values()}
    for flag, value in shown.items():
        key = flag.replace("-", "_")
        assert value.strip() == default_repr(preset.get(key, defaults.get(key))), flag


def test_search_help_lists_the_config_keys_group_by_group(capsys):
    """SearchConfig inherits its keys from small option classes; --help shows one section per class."""
    import dataclasses

    from nsas.objectives import NSASOptions
    from nsas.search_config import SearchConfig
    from nsas.strategies import GDASOptions

    assert main(["search", "--help"]) == 0
    out = capsys.readouterr().out
    headings = [line.rstrip(":") for line in out.splitlines() if line and not line[0].isspace() and line.endswith(":")]
    for heading in ("NSAS options", "GDAS options", "Optimizer options (the supernet's weights)", "Data-parallel options"):
        assert heading in headings
    sections = dict(zip(headings, re.split(r"^\S.*:$", out, flags=re.M)[1:]))
    for cls, heading in ((NSASOptions, "NSAS options"), (GDASOptions, "GDAS options")):
        flags = set(re.findall(r"^  (--[\w-]+)", sections[heading], flags=re.M))
        assert flags == {"--" + f.name.replace("_", "-") for f in dataclasses.fields(cls)}
    assert {f.name for f in dataclasses.fields(NSASOptions)} <= {f.name for f in dataclasses.fields(SearchConfig)}
