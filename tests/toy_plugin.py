"""A stand-in third-party plug-in, loaded through the nsas.plugins entry-point group in tests/test_registry.py."""

from torch import nn

from nsas.spaces import register_space
from nsas.spaces.choice import ChoiceSpace

CALLS = []


def register() -> None:
    """The entry point's function form: called once with no arguments."""
    CALLS.append("register")
    register_space(ChoiceSpace([{"a": nn.Identity, "b": nn.Identity}]), name="plugin-space")
