"""The login gate every page passes through (Home.py calls :func:`require_user` before navigating).

The rules live in :mod:`flashdock.auth`; this module is the Streamlit side: the form, the per-session
login, and the refusal of a remote client when no login is configured.
"""

from __future__ import annotations

import streamlit as st

from flashdock.auth import FailureLimiter, hash_password, verify_password
from flashdock.settings import Settings
from services.common.addresses import is_loopback

SESSION_KEY = "flashdock_user"


@st.cache_resource(show_spinner=False)
def _limiter() -> FailureLimiter:
    """One limiter for every session of this process."""
    return FailureLimiter()


@st.cache_resource(show_spinner=False)
def _hash_of(password: str) -> str:
    """A plain ``FLASHDOCK_PASSWORD`` is hashed once; only the hash is compared against."""
    return hash_password(password)


def _client_ip() -> str | None:
    """The browser's address as Streamlit saw it (None when unknown, as in tests)."""
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else None


def _client() -> str:
    return _client_ip() or "local"


def require_user(settings: Settings) -> str | None:
    """The signed-in user (None when no login is configured and the client is local); else stop the page."""
    client = _client_ip()
    if not settings.login_required:
        if client and not is_loopback(client):
            st.error(
                "FlashDock is reachable from another machine but no login is configured. An operator must set "
                "FLASHDOCK_PASSWORD_HASH (python -m flashdock --hash-password) or put it behind an identity-aware "
                "proxy (FLASHDOCK_TRUSTED_USER_HEADER)."
            )
            st.stop()
        return None
    if settings.trusted_user_header:
        user = (st.context.headers.get(settings.trusted_user_header) or "").strip()
        if user:
            return user[:128]
        if not (settings.password or settings.password_hash):
            st.error("Sign in through your organisation's login page: this address did not identify you.")
            st.stop()
    if st.session_state.get(SESSION_KEY):
        return str(st.session_state[SESSION_KEY])
    _login_form(settings)
    st.stop()
    return None  # not reached: st.stop ends the run


def _login_form(settings: Settings) -> None:
    st.title("FlashDock")
    st.write("Sign in to predict binding affinities, train models and watch the fleet.")
    limiter = _limiter()
    wait = limiter.retry_after(_client())
    if wait > 0:
        st.error(f"Too many failed sign-ins from this address: try again in {wait:.0f} s.")
        return
    with st.form("login"):
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    stored = settings.password_hash or _hash_of(settings.password)
    if password and verify_password(stored, password):
        limiter.succeeded(_client())
        st.session_state[SESSION_KEY] = "user"
        st.rerun()
    limiter.failed(_client())
    st.error("Wrong password.")


def sign_out_button() -> None:
    """In the sidebar, for a password login (a proxy login is ended at the proxy)."""
    if st.session_state.get(SESSION_KEY) and st.sidebar.button("Sign out"):
        st.session_state.pop(SESSION_KEY, None)
        st.rerun()
