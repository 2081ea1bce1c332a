"""Cached clients: one :class:`~flashdock.mesh.Mesh` per registry URL, shared by every session and rerun."""

from __future__ import annotations

import streamlit as st

from flashdock import settings as settings_mod
from flashdock.mesh import Mesh
from flashdock.settings import Settings


def get_settings() -> Settings:
    """Read on every rerun (cheap) so a changed environment is seen by the next page load."""
    return settings_mod.load()


@st.cache_resource(show_spinner=False, on_release=lambda mesh: mesh.close())
def _mesh(settings: Settings) -> Mesh:
    return Mesh(settings)


def get_mesh() -> Mesh:
    """The shared Mesh for the configured registry (its watcher threads live as long as the app)."""
    return _mesh(get_settings())
