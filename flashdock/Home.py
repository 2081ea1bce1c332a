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
    st.set_page_config(page_title="FlashDock", page_icon=":material/bolt:", layout="wide")
    pages = {
        "Overview": [st.Page(VIEWS / "home.py", title="Home", icon=":material/home:", default=True)],
        "Affinity": [
            st.Page(VIEWS / "predict.py", title="Predict affinity", icon=":material/target:"),
            st.Page(VIEWS / "training.py", title="Training", icon=":material/model_training:"),
            st.Page(VIEWS / "data.py", title="Data", icon=":material/folder_open:"),
            st.Page(VIEWS / "models.py", title="Models", icon=":material/inventory_2:"),
        ],
        "Sequences": [st.Page(VIEWS / "sequence.py", title="Sequence tools", icon=":material/genetics:")],
        "Operations": [st.Page(VIEWS / "monitor.py", title="Monitor", icon=":material/monitoring:")],
    }
    st.navigation(pages).run()


run()
