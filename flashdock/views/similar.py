"""Similar: nearest neighbours of a molecule (SMILES) or an antibody sequence in a collection of the vector service.

Molecules are compared by exact Tanimoto on Morgan fingerprints (the worker fingerprints the
SMILES); sequences by cosine between AntiBERTy embeddings (computed by an antiberty worker
first). A library (CSV with ``id`` and ``smiles`` or ``sequence`` columns) is indexed in chunks,
with progress. Everything goes through the mesh's Router: the page never talks to Milvus.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import streamlit as st

from flashdock.client import get_mesh
from flashdock.text import code_span
from flashdock.ui import attempt, registry_banner, served_by

SERVICE = "vector-search"
FP_BITS = 2048
EMBED_DIM = 512
CHUNK = 200
MAX_MOLECULES = 5000  # a library upload is bounded: each row costs a fingerprint on the worker
MAX_SEQUENCES = 100  # each sequence costs an AntiBERTy pass (about a second on a CPU)
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
EXAMPLE_LIBRARY = (
    "id,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\nsalicylic_acid,O=C(O)c1ccccc1O\nparacetamol,CC(=O)Nc1ccc(O)cc1\n"
)

st.title("Similar")
st.caption("Nearest neighbours by exact Tanimoto (molecules) or AntiBERTy embedding cosine (antibody sequences).")
registry_banner()
mesh = get_mesh()


def vectors_api(method: str, path: str, deadline: float = 30.0, **kwargs: Any) -> Any:
    """A vector-service route (token attached), through the Router."""
    return mesh.compass_api(SERVICE, method, "/vectors" + path, deadline=deadline, **kwargs)


def embed(sequence: str) -> list[float]:
    payload = {"sequence": sequence, "task_type": "embedding", "options": {"per_residue": False}}
    return mesh.sequence("protein-embedding", payload).data["mean"]


def structure_png(smiles: str) -> bytes | None:
    """A 2-D drawing of a molecule (None when RDKit cannot read it)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Draw

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return None
    buf = io.BytesIO()
    Draw.MolToImage(mol, size=(220, 160)).save(buf, format="PNG")
    return buf.getvalue()


def read_library(text: str) -> pd.DataFrame:
    """The library as rows with ``id`` and ``smiles`` or ``sequence`` (a ValueError says what is wrong)."""
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    frame.columns = [c.strip().lower() for c in frame.columns]
    kind = "smiles" if "smiles" in frame.columns else "sequence" if "sequence" in frame.columns else None
    if "id" not in frame.columns or kind is None:
        raise ValueError("the CSV needs an 'id' column and a 'smiles' or 'sequence' column")
    limit = MAX_MOLECULES if kind == "smiles" else MAX_SEQUENCES
    if len(frame) > limit:
        raise ValueError(f"{len(frame)} rows; at most {limit} per upload for {kind}")
    if frame["id"].duplicated().any():
        raise ValueError("ids must be unique")
    return frame


def collections() -> list[dict[str, Any]]:
    res = attempt(lambda: vectors_api("GET", "/collections"), "Vector service")
    return [c for c in (res.data["collections"] if res else []) if "error" not in c]


def ensure_collection(name: str, kind: str, known: list[dict[str, Any]]) -> bool:
    if any(c["name"] == name for c in known):
        return True
    spec = (
        {"name": name, "dim": FP_BITS, "vector_type": "binary", "metric": "tanimoto"}
        if kind == "smiles"
        else {"name": name, "dim": EMBED_DIM, "metric": "cosine", "index": "approximate"}
    )
    return attempt(lambda: vectors_api("POST", "/collections", json=spec), "Create collection") is not None


def index_library(name: str, frame: pd.DataFrame) -> int:
    """Upsert the rows in chunks with a progress bar; returns how many were indexed."""
    kind = "smiles" if "smiles" in frame.columns else "sequence"
    progress = st.progress(0.0, text="indexing…")
    done = 0
    for start in range(0, len(frame), CHUNK):
        part = frame.iloc[start : start + CHUNK]
        items = []
        for row in part.to_dict(orient="records"):
            item: dict[str, Any] = {"id": row["id"], "metadata": {k: v for k, v in row.items() if k != "id"}}
            if kind == "smiles":
                item["smiles"] = row["smiles"]
            else:
                vector = attempt(lambda r=row: embed(r["sequence"].strip().upper()), f"Embedding {row['id']}")
                if vector is None:
                    return done
                item["vector"] = vector
            items.append(item)
        if (
            attempt(lambda i=items: vectors_api("PUT", f"/collections/{name}/vectors", json={"items": i}), "Index")
            is None
        ):
            return done
        done += len(items)
        progress.progress(done / len(frame), text=f"indexed {done} of {len(frame)}")
    return done


known = collections()
search_tab, index_tab = st.tabs(["Search", "Index a library"])

with search_tab:
    if not known:
        st.info("No collection yet: index a library first (tab 'Index a library').")
    else:
        labels = {f"{c['name']} ({c['vector_type']}, {c['row_count']} rows)": c for c in known}
        chosen = labels[st.selectbox("Collection", list(labels), key="sim_collection")]
        binary = chosen["vector_type"] == "binary"
        query = st.text_area("SMILES" if binary else "Antibody sequence", key="sim_query").strip()
        top_k = st.slider("Neighbours", 1, 50, 10, key="sim_top_k")
        if st.button("Find similar", key="sim_run", type="primary") and query:
            body: dict[str, Any] = {"top_k": top_k}
            if binary:
                body["smiles"] = [query]
            else:
                vector = attempt(lambda: embed("".join(query.split()).upper()), "Embedding")
                body["vectors"] = [vector] if vector else None
            res = attempt(lambda: vectors_api("POST", f"/collections/{chosen['name']}/search", json=body), "Search")
            if res and body.get("vectors", True):
                st.caption(served_by(res))
                hits = res.data["results"][0]
                measure = "Tanimoto" if binary else "cosine"
                st.markdown(f"**{len(hits)} neighbours** by {measure} (exact: {res.data['exact']})")
                table = pd.DataFrame(
                    [{"id": h["id"], "similarity": round(h["score"], 4), **h["metadata"]} for h in hits]
                )
                st.dataframe(table, hide_index=True)
                if binary:
                    columns = st.columns(4)
                    for i, hit in enumerate(hits[:12]):
                        png = structure_png(str(hit["metadata"].get("smiles", "")))
                        with columns[i % 4]:
                            if png:
                                st.image(png)
                            st.markdown(f"{code_span(hit['id'], 60)} · {hit['score']:.3f}")

with index_tab:
    name = st.text_input("Collection name", "my_library", key="sim_new_name").strip()
    uploaded = st.file_uploader("Library CSV (id, smiles | sequence, other columns kept)", type=["csv"])
    pasted = st.text_area("…or paste the CSV", EXAMPLE_LIBRARY, key="sim_library")
    if st.button("Index", key="sim_index", type="primary"):
        raw = uploaded.getvalue()[: MAX_UPLOAD_BYTES + 1] if uploaded is not None else pasted.encode()
        try:
            if len(raw) > MAX_UPLOAD_BYTES:
                raise ValueError(f"the file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
            library = read_library(raw.decode("utf-8", errors="replace"))
        except (ValueError, pd.errors.ParserError) as exc:
            st.error(f"Cannot read the library: {exc}")
        else:
            kind = "smiles" if "smiles" in library.columns else "sequence"
            if ensure_collection(name, kind, known):
                count = index_library(name, library)
                if count == len(library):
                    st.success(f"Indexed {count} {'molecules' if kind == 'smiles' else 'sequences'} into {name}.")
