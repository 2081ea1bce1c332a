"""FlashDock's own defences without a fleet: login, third-party text, the 3D view's crop and escaping, zip limits."""

from __future__ import annotations

import io
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from flashdock.auth import FailureLimiter, hash_password, verify_password
from flashdock.pairs import MAX_MEMBER_BYTES, ZipPairs
from flashdock.text import card_html, code_span
from flashdock.viewer import CONTACT_A, build_view, view_html
from tests.flashdock.apptest import HOME
from tests.flashdock.fleet import EXAMPLES


def test_password_hash_is_salted_and_checked_in_constant_time() -> None:
    stored = hash_password("s3cret", iterations=1000)
    assert stored != hash_password("s3cret", iterations=1000), "a fresh salt each time"
    assert verify_password(stored, "s3cret") and not verify_password(stored, "s3cret ")
    assert not verify_password("garbage", "s3cret") and not verify_password("md5$1$x$y", "s3cret")


def test_failures_are_limited_per_client_and_overall() -> None:
    limiter = FailureLimiter(per_client=2, overall=3, window_s=60)
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") > 0 and limiter.retry_after("b") == 0
    limiter.failed("b")
    assert limiter.retry_after("c") > 0, "many clients together are limited too"


def test_login_form_wrong_password_rate_limit_and_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHDOCK_PASSWORD_HASH", hash_password("open sesame", iterations=1000))
    monkeypatch.setenv("FLASHDOCK_REGISTRY_URL", "http://127.0.0.1:9")  # nothing is reached before the login
    at = AppTest.from_file(HOME, default_timeout=30).run()
    assert [t.label for t in at.text_input] == ["Password"] and not at.get("page_link")
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "Wrong password." in [e.value for e in at.error]
    at.text_input[0].input("open sesame")
    at.button[0].click().run()
    assert not at.exception and at.title[0].value == "FlashDock" and at.get("page_link"), "signed in: Home"

    fresh = AppTest.from_file(HOME, default_timeout=30).run()  # another session of the same process
    for _ in range(5):
        fresh.text_input[0].input("guess")
        fresh.button[0].click().run()
    fresh.run()  # the next visit from the same address
    assert any("Too many failed sign-ins" in e.value for e in fresh.error)
    assert not fresh.text_input, "no form while the address is locked out"


def test_a_model_card_keeps_formatting_but_loses_links_images_and_html() -> None:
    html = card_html(
        "# Card\n\n- see [here](http://evil.example/x) ![pixel](http://evil.example/p.png)\n\n"
        "<img src=x onerror=alert(1)><script>alert(2)</script>\n\n**bold**"
    )
    assert "<h1>Card</h1>" in html and "<strong>bold</strong>" in html and "<li>" in html
    assert "evil.example" not in html and "<a" not in html and "<img" not in html and "<script" not in html
    assert code_span("x`[a](http://e)`\nnext") == "`x'[a](http://e)' next`"


def test_the_view_crops_to_residues_near_the_ligand_and_labels_contacts() -> None:
    folder = EXAMPLES / "1a30"
    pocket = (folder / "1a30_pocket.pdb").read_text()
    # Far-away residues first in the file: truncating "the first N atoms" would keep only them.
    far = "".join(
        f"ATOM  {n:5d}  CA  GLY Z{n:4d}    {200.0 + n:8.3f}{200.0:8.3f}{200.0:8.3f}  1.00  0.00           C\n"
        for n in range(1, 500)
    )
    view = build_view(far + pocket, (folder / "1a30_ligand.sdf").read_text(), "sdf")
    assert view.n_ligand_atoms > 0 and view.contacts
    assert ":Z" not in view.pocket_pdb[:2000] and " Z " not in "".join(view.contacts), "far residues were drawn"
    assert view.n_kept_atoms < view.n_protein_atoms
    mol2 = build_view(pocket, (folder / "1a30_ligand.mol2").read_text(), "mol2")
    assert mol2.n_ligand_atoms == view.n_ligand_atoms and mol2.contacts == view.contacts
    assert CONTACT_A == 5.0


def test_file_text_cannot_break_out_of_the_viewer_script() -> None:
    folder = EXAMPLES / "1a30"
    hostile = (folder / "1a30_ligand.sdf").read_text().replace("\n", "\n</script><script>alert(1)</script>\n", 1)
    html = view_html(build_view((folder / "1a30_pocket.pdb").read_text(), hostile, "sdf"))
    assert "alert(1)" in html and "</script><script>alert(1)" not in html
    assert "cdn" not in html.lower().split("const d =")[-1] and "http" not in html.split("const D =")[-1]


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def test_zip_pairs_are_read_one_by_one_within_limits() -> None:
    pdb, sdf = (
        (EXAMPLES / "1a30" / "1a30_pocket.pdb").read_bytes(),
        (EXAMPLES / "1a30" / "1a30_ligand.sdf").read_bytes(),
    )
    bomb = b"\0" * (MAX_MEMBER_BYTES + 1)
    pairs = ZipPairs(
        zip_of({"a/a_pocket.pdb": pdb, "a/a_ligand.sdf": sdf, "b/b_pocket.pdb": bomb, "b/b_ligand.sdf": sdf})
    )
    assert pairs.keys == ["a/a", "b/b"]
    assert pairs.pair("a/a").protein == ("a_pocket.pdb", pdb)
    with pytest.raises(ValueError, match="larger than"):
        pairs.pair("b/b")

    # A header that lies about the size is caught while reading.
    raw = zip_of({"c_pocket.pdb": b"x" * 5000, "c_ligand.sdf": sdf}, zipfile.ZIP_STORED).getvalue()
    lying = raw.replace((5000).to_bytes(4, "little"), (10).to_bytes(4, "little"))
    with pytest.raises(ValueError):
        ZipPairs(io.BytesIO(lying)).pair("c")
    with pytest.raises(ValueError, match="not a zip"):
        ZipPairs(io.BytesIO(b"plain text"))
