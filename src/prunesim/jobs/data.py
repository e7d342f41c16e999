"""Job: load an experiment's dataset once and fix its split and probe set."""

from __future__ import annotations

from prunesim.data import DataSettings, prepare


def prepare_data(dataset: dict, out: str) -> None:
    prepare(DataSettings(**dataset), out)
