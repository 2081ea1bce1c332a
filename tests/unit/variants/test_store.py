"""The variant store: validated, all-or-nothing imports; filters that cannot inject SQL; mutant notation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.variants.dms import TRASTUZUMAB_VH, dms_slice
from variants.db import StoreError, VariantStore
from variants.filters import FilterError, compile_where
from variants.importer import ImportOptions, import_table
from variants.notation import NotationError, expand

DMS = ImportOptions(
    template="tz",
    mutant_column="AASeq",
    window_start=99,
    label_column="AgClass",
    reads_column="Count",
    nucleotide_column="NucSeq",
    assay="her2",
)


@pytest.fixture
def store(tmp_path: Path) -> VariantStore:
    s = VariantStore(tmp_path / "v.db")
    s.add_source("tz", TRASTUZUMAB_VH, name="trastuzumab VH")
    yield s
    s.close()


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_real_dms_rows_import_with_their_reads_and_expanded_sequences(store: VariantStore, tmp_path: Path) -> None:
    assert import_table(store, dms_slice(tmp_path, 50), DMS) == 100
    rows = store.select([["label", "=", 1]])
    assert len(rows) == 50 and all(r["sequence"][98:108] == r["mutant"] for r in rows)
    assert all(r["sequence"][:98] == TRASTUZUMAB_VH[:98] and r["reads"] >= 1 for r in rows)
    assert rows[0]["source_row"] == 2 and rows[0]["n_mutations"] == sum(
        a != b for a, b in zip(rows[0]["sequence"], TRASTUZUMAB_VH, strict=True)
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("mutant,label\nW99F,1\nW99B,0\n", "line 3"),  # B is not one of the 20 amino acids
        ("mutant,label\nW99F,1\nW99F,1\n", "duplicate of line 2"),
        ("mutant,label\nW99F,1\nA99F,0\n", "A99F: the template has W at position 99"),
        ("mutant,label\nW99F,1\nW99F,x\n", "line 3: label 'x' is not a number"),
        ("mutant,lbl\nW99F,1\n", "'label' not in the header"),
    ],
)
def test_a_bad_row_stops_the_import_naming_its_line_and_nothing_is_stored(
    store: VariantStore, tmp_path: Path, body: str, fragment: str
) -> None:
    opts = ImportOptions(template="tz", mutant_column="mutant", label_column="label")
    with pytest.raises(StoreError, match=fragment):
        import_table(store, write(tmp_path, body), opts)
    assert store.count() == 0 and store.summary()["imports"] == []


def test_unknown_template_and_duplicates_of_stored_rows_are_refused(store: VariantStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="line 2: unknown template 'nope'"):
        import_table(
            store, write(tmp_path, "mutant,label\nW99F,1\n"), ImportOptions(template="nope", label_column="label")
        )
    opts = ImportOptions(template="tz", label_column="label")
    import_table(store, write(tmp_path, "mutant,label\nW99F,1\n"), opts)
    with pytest.raises(StoreError, match=r"line 3: duplicate row .* from t\.csv line 2"):
        import_table(store, write(tmp_path, "mutant,label\nG100A,0\nW99F,1\n", "u.csv"), opts)
    assert store.count() == 1  # u.csv's first, valid row was not kept either


def test_fasta_templates_and_variants(store: VariantStore, tmp_path: Path) -> None:
    from variants.importer import import_sources_fasta

    assert import_sources_fasta(store, ">short a short one\nACDEF\nGHIK\n", "t.fa") == ["short"]
    assert store.source("short")["sequence"] == "ACDEFGHIK"
    fasta = write(tmp_path, ">v1 label=1 reads=4\nACDEFGHIY\n>v2 label=0\nACDEFGHIK\n", "v.fasta")
    assert import_table(store, fasta, ImportOptions(template="short")) == 2
    rows = store.select([["template_id", "=", "short"]])
    assert [(r["sequence"], r["label"], r["reads"]) for r in rows] == [("ACDEFGHIY", 1.0, 4), ("ACDEFGHIK", 0.0, None)]


def test_where_filters_are_parameters_never_sql(store: VariantStore, tmp_path: Path) -> None:
    import_table(store, dms_slice(tmp_path, 20), DMS)
    injected = "1 OR 1=1; DROP TABLE mutations; --"
    assert store.select([["mutant", "=", injected]]) == []
    assert store.select([["assay", "in", ["her2' OR '1'='1"]]]) == []
    for bad in (["label; DROP TABLE mutations", "=", 1], ["label", "= 1 OR 1=1 --", 1], ["label", "=", {"x": 1}]):
        with pytest.raises(FilterError):
            store.select([bad])
    assert store.count() == 40  # the table is intact
    clause, params = compile_where([["reads", ">=", 10], ["label", "is not null"]])
    assert clause == "m.reads >= ? AND m.label IS NOT NULL" and params == [10]
    assert {r["label"] for r in store.select([["reads", ">=", 10], ["label", "=", 1]])} == {1.0}


@pytest.mark.parametrize(
    ("mutant", "expected"),
    [
        ("D102Y", TRASTUZUMAB_VH[:101] + "Y" + TRASTUZUMAB_VH[102:]),
        ("W99F:D102Y", TRASTUZUMAB_VH[:98] + "FGGY" + TRASTUZUMAB_VH[102:]),
        ("WT", TRASTUZUMAB_VH),
        (TRASTUZUMAB_VH[:5] + "A" + TRASTUZUMAB_VH[6:], TRASTUZUMAB_VH[:5] + "A" + TRASTUZUMAB_VH[6:]),
    ],
)
def test_mutant_notation_expands_against_the_template(mutant: str, expected: str) -> None:
    assert expand(TRASTUZUMAB_VH, mutant) == expected


def test_window_notation_and_notation_errors_name_the_mutation() -> None:
    assert expand(TRASTUZUMAB_VH, "YTICSFYKLQ", window_start=99)[98:108] == "YTICSFYKLQ"
    with pytest.raises(NotationError, match="G102Y: the template has D at position 102"):
        expand(TRASTUZUMAB_VH, "W99F:G102Y")
    with pytest.raises(NotationError, match="W999F: position 999 is outside"):
        expand(TRASTUZUMAB_VH, "W999F")
    with pytest.raises(NotationError, match="neither substitutions"):
        expand(TRASTUZUMAB_VH, "WGGD")
