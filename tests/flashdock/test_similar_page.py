"""The Similar page against a real vectors worker (Milvus Lite) in the session's fleet.

Index a pasted library with progress, then search it: the neighbours, their exact Tanimoto and
structure images must be the worker's own answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.flashdock.apptest import by_label, open_page, texts
from tests.flashdock.fleet import WORKER_ENV, instances, wait_ready
from tests.support import TOKEN, Proc, python_env, spawn, wait_until
from vectors.fingerprints import morgan_bits, tanimoto

LIBRARY = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "salicylic_acid": "O=C(O)c1ccccc1O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
}


@pytest.fixture(scope="module")
def vectors_worker(fleet: dict[str, Any]) -> Iterator[Proc]:
    pytest.importorskip("milvus_lite")
    registry = fleet["registry"]
    args = [
        "-m",
        "vectors.worker",
        "--port",
        "0",
        "--registry",
        registry.base_url,
        "--milvus-uri",
        str(fleet["tmp"] / "similar-page.db"),
    ]
    proc = spawn(args, fleet["tmp"] / "vectors-page.log", "", env=python_env(**WORKER_ENV, VECTORS_API_TOKEN=TOKEN))
    try:
        wait_ready(proc, "vectors", timeout=60)
        wait_until(
            lambda: any(i["service_name"] == "vectors" and i["status"] == "passing" for i in instances(registry)),
            timeout=30,
            what="vectors passing",
        )
        yield proc
    finally:
        proc.stop()
        wait_until(lambda: not any(i["service_name"] == "vectors" for i in instances(registry)), timeout=20)


def test_index_a_library_then_find_neighbours(fleet: dict[str, Any], vectors_worker: Proc) -> None:
    at = open_page("similar")
    assert "No collection yet" in texts(at)
    at.text_input(key="sim_new_name").input("page_lib")
    csv = "id,smiles,series\n" + "".join(f"{k},{v},A\n" for k, v in LIBRARY.items())
    at.text_area(key="sim_library").input(csv)
    at.button(key="sim_index").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert "Indexed 4 molecules into page_lib." in [s.value for s in at.success]
    info = requests.get(vectors_worker.base_url + "/api/v1/vectors/collections/page_lib", timeout=10).json()["data"]
    assert (info["row_count"], info["vector_type"]) == (4, "binary")

    at = open_page("similar")
    query = "OC(=O)c1ccccc1OC(C)=O"  # aspirin written another way
    at.text_area(key="sim_query").input(query)
    at.button(key="sim_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    expected = sorted(LIBRARY, key=lambda k: -tanimoto(morgan_bits(query), morgan_bits(LIBRARY[k])))
    assert list(table["id"]) == expected
    assert table["similarity"].iloc[0] == pytest.approx(1.0)
    assert list(table["series"]) == ["A"] * 4
    assert len(at.get("image")) == 4, "every molecule is drawn"
    assert "served by **vectors**" in texts(at)


def test_a_library_without_the_columns_is_refused_on_the_page(fleet: dict[str, Any], vectors_worker: Proc) -> None:
    at = open_page("similar")
    at.text_area(key="sim_library").input("name,structure\nx,CCO\n")
    at.button(key="sim_index").click().run(timeout=30)
    assert any("needs an 'id' column" in e.value for e in at.error)
    by_label(at.text_input, "Collection name")  # the form is still there
