"""FlashDock entry point: navigation only (each page lives in views/)."""

import sys
from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"
# `streamlit run flashdock/Home.py` puts flashdock/ on sys.path, not the repository; pages import flashdock.*.
if str(VIEWS.parents[1]) not in sys.path:
    sys.path.insert(0, str(VIEWS.parents[1]))


def run() -> None:
    """Inside a function so tests can build the same navigation."""
    from flashdock.client import get_settings
    from flashdock.login import require_user, sign_out_button

    # A local icon: a ":material/...:" icon makes the browser fetch the favicon from an external font host.
    st.set_page_config(page_title="FlashDock", page_icon=str(VIEWS.parent / "static" / "icon.png"), layout="wide")
    st.set_option("client.toolbarMode", "minimal")  # no Deploy button, no developer menu
    require_user(get_settings())  # stops the page with a login form (or a refusal) when needed
    sign_out_button()
    pages = {
        "Overview": [st.Page(VIEWS / "home.py", title="Home", icon=":material/home:", default=True)],
        "Affinity": [
            st.Page(VIEWS / "dock.py", title="Dock", icon=":material/biotech:"),
            st.Page(VIEWS / "predict.py", title="Predict affinity", icon=":material/target:"),
            st.Page(VIEWS / "training.py", title="Training", icon=":material/model_training:"),
            st.Page(VIEWS / "data.py", title="Data", icon=":material/folder_open:"),
            st.Page(VIEWS / "models.py", title="Models", icon=":material/inventory_2:"),
        ],
        "Sequences": [
            st.Page(VIEWS / "sequence.py", title="Sequence tools", icon=":material/genetics:"),
            st.Page(VIEWS / "variants.py", title="Variants", icon=":material/science:"),
        ],
        "Search": [st.Page(VIEWS / "similar.py", title="Similar", icon=":material/search:")],
        "Operations": [st.Page(VIEWS / "monitor.py", title="Monitor", icon=":material/monitoring:")],
    }
    st.navigation(pages).run()


run()
