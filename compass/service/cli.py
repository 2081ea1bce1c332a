"""The COMPASS worker's own flags: the :class:`ServiceSettings` fields plus ``--model``.

The runtime adds its own (:mod:`services.worker.cli`); flag > ``COMPASS_SERVICE_*`` > default.
"""

from __future__ import annotations

from types import SimpleNamespace

import click

from compass.service.settings import ServiceSettings
from services.common.cli import from_params, options

KINDS = ("compass", "compass-lite")

COMPASS_OPTIONS: list[click.Option] = [
    click.Option(
        ["--model"],
        type=click.Choice(KINDS),
        default="compass",
        show_default=True,
        help="which model this worker serves",
    ),
    *options(ServiceSettings),
]


def service_settings(args: SimpleNamespace) -> ServiceSettings:
    """The parsed flags as settings (ranges were checked by the options)."""
    settings = from_params(ServiceSettings, vars(args), ServiceSettings())
    settings.featurize_slots = max(0, settings.featurize_slots)
    settings.batch_workers = max(0, settings.batch_workers)
    return settings
