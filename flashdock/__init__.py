"""FlashDock: the Streamlit pages that drive the mesh (a thin client over ``services.client``)."""
