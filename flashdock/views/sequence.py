"""Sequence tools: antibody embedding / likelihood, splice-site probabilities, codon optimisation + verification."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from flashdock.client import get_mesh
from flashdock.ui import attempt, registry_banner, served_by

HOSTS = ["e_coli", "s_cerevisiae", "h_sapiens", "m_musculus", "b_subtilis", "c_elegans", "d_melanogaster", "g_gallus"]
EXAMPLE_HEAVY = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSRWG"
    "GDGFYAMDYWGQGTLVTVSS"
)
EXAMPLE_DNA = (
    "CCCAGGTTGGTATCAAGGTTACAAGACAGGTTTAAGGAGACCAATAGAAACTGGGCATGTGGAGACAGAGAAGACTCTTGGGTTTCTGATAGGCACTGAC"
    "TCTCTCTGCCTATTGGTCTATTTTCCCACCCTTAGG"
)
EXAMPLE_PROTEIN = (
    "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALR"
    "PDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVG"
    "IGGKLSDGHRHDVRAPDYDDWAQKANWPGG"
)

st.title("Sequence tools")
registry_banner()
mesh = get_mesh()
antibody, splice, codon = st.tabs(["Antibody", "Splice sites", "Codon optimisation"])


def clean(text: str) -> str:
    return "".join(text.split()).upper()


with antibody:
    seq = clean(st.text_area("Antibody chain (amino acids)", EXAMPLE_HEAVY, key="ab_seq"))
    task = st.radio("Task", ["embedding", "pseudo_log_likelihood"], horizontal=True)
    if st.button("Run", key="ab_run", type="primary"):
        capability = "protein-embedding" if task == "embedding" else "antibody-likelihood"
        with st.spinner("Running the protein language model…"):
            # The page shows the mean-pooled vector only: no per-residue vectors over the wire.
            payload = {"sequence": seq, "task_type": task, "options": {"per_residue": False}}
            res = attempt(lambda: mesh.sequence(capability, payload), "Antibody model")
        if res:
            st.caption(served_by(res))
            d = res.data
            if task == "embedding":
                st.metric("Embedding size", d.get("dim"))
                st.line_chart(pd.DataFrame({"mean embedding": d.get("mean", [])}))
            else:
                c1, c2 = st.columns(2)
                c1.metric("Pseudo log-likelihood", f"{d.get('pseudo_log_likelihood', float('nan')):.3f}")
                c2.metric("Pseudo perplexity", f"{d.get('pseudo_perplexity', float('nan')):.2f}")

with splice:
    dna = clean(st.text_area("DNA sequence (ACGTN)", EXAMPLE_DNA, key="dna_seq"))
    strand = st.radio("Strand", ["+", "-"], horizontal=True)
    if st.button("Score splice sites", key="sp_run", type="primary"):
        with st.spinner("Running SpliceAI…"):
            payload = {"sequence": dna, "task_type": "splice", "options": {"strand": strand, "scores": True}}
            res = attempt(lambda: mesh.sequence("splice-site", payload), "Splice model")
        if res:
            st.caption(served_by(res))
            d = res.data
            frame = pd.DataFrame(
                {
                    "position": range(1, len(d.get("acceptor", [])) + 1),
                    "acceptor": d.get("acceptor", []),
                    "donor": d.get("donor", []),
                }
            )
            long = frame.melt(id_vars="position", var_name="site", value_name="probability")
            st.altair_chart(
                alt.Chart(long).mark_line().encode(x="position:Q", y="probability:Q", color="site:N"), width="stretch"
            )
            st.dataframe(pd.DataFrame(d.get("sites", [])), hide_index=True)

with codon:
    protein = clean(st.text_area("Protein to express", EXAMPLE_PROTEIN, key="codon_seq"))
    host = st.selectbox("Host", HOSTS)
    if st.button("Optimise and verify", key="codon_run", type="primary"):
        progress = st.progress(0.0, text="optimising…")
        request = {"sequence": protein, "task_type": "optimize", "options": {"host": host}}
        opt = attempt(lambda: mesh.sequence("codon-optimization", request), "Codon optimisation")
        if opt:
            progress.progress(0.5, text="verifying…")
            dna_out = opt.data["sequence"]
            payload = {"sequence": dna_out, "task_type": "verify", "options": {"host": host, "protein": protein}}
            ver = attempt(lambda: mesh.sequence("codon-verification", payload), "Verification")
            progress.progress(1.0, text="done")
            st.caption(served_by(opt))
            c1, c2, c3 = st.columns(3)
            c1.metric("CAI", f"{opt.data.get('cai', 0):.3f}")
            c2.metric("GC", f"{(opt.data.get('gc') or {}).get('gc_content', 0):.1%}")
            c3.metric("Verified", "yes" if ver and ver.data.get("valid") else "no")
            st.code(dna_out, language="text")
            st.download_button("Download DNA (FASTA)", f">optimised_{host}\n{dna_out}\n", "optimised.fasta")
            if ver:
                st.markdown("**Verification report**")
                st.json(ver.data, expanded=False)
