"""The Hierarchy on the real Open Images files: counts, depths, layers, nearest ancestors, label
expansion, the 600-class file with Part edges, errors naming file/line/key, and the CLI."""

from __future__ import annotations

import json

import pytest

from hierseg.hierarchy import ROOT_MID, Hierarchy, HierarchyError, read_class_descriptions

H600 = "bbox_labels_600_hierarchy.json"
C600 = "class-descriptions-boxable.csv"


def mids(h: Hierarchy, *names: str) -> list[str]:
    return [h.mid_of(n) for n in names]


def names(h: Hierarchy, classes) -> list[str]:
    return [h.name(c) for c in classes]


# ----------------------------------------------------------------------------- the 300 classes
def test_real_300_counts(hierarchy):
    h = hierarchy
    assert len(h) == 300 and len(set(h.classes)) == 300
    assert ROOT_MID not in h
    assert h.max_depth == 2
    layer0, layer1 = h.layers()
    assert (len(layer0), len(layer1)) == (213, 87)
    assert set(layer0).isdisjoint(layer1) and set(layer0) | set(layer1) == set(h.classes)
    assert sorted(names(h, [c for c in h.classes if h.depth(c) == 2])) == sorted(
        ["Brown bear", "Polar bear", "Teddy bear", "Tortoise", "Sea turtle"]
    )
    assert sum(h.depth(c) == 1 for c in h.classes) == 82  # 83 appear at depth 1, Teddy bear also at 2
    assert len(h.parent_classes()) == 25
    assert names(h, h.multi_parent_classes()) == ["Teddy bear"]
    assert len(h.leaves()) == 275 and all(h.is_leaf(c) for c in h.leaves())
    assert set(h.roots()) == set(layer0)


def test_teddy_bear(hierarchy):
    h = hierarchy
    teddy, toy, bear, carnivore = mids(h, "Teddy bear", "Toy", "Bear", "Carnivore")
    assert set(h.parents(teddy)) == {toy, bear}
    assert h.depths(teddy) == (1, 2) and h.depth(teddy) == 2
    assert h.layer_of(teddy) == 1
    assert h.ancestors(teddy) == {toy, bear, carnivore}
    layer0 = h.layers()[0]
    assert h.ancestor_in(teddy, layer0) == toy  # one edge up, not Carnivore (two)
    assert h.path_down(carnivore, teddy) == (carnivore, bear, teddy)
    assert h.path_down(toy, teddy) == (toy, teddy)
    assert h.path_down(teddy, teddy) == (teddy,)
    with pytest.raises(ValueError, match="not an ancestor"):
        h.path_down(h.mid_of("Person"), teddy)


def test_nearest_ancestor_in_layer(hierarchy):
    h = hierarchy
    layer0 = h.layers()[0]
    brown, carnivore, man, person = mids(h, "Brown bear", "Carnivore", "Man", "Person")
    assert h.ancestor_in(brown, layer0) == carnivore
    assert h.ancestor_in(man, layer0) == person
    assert h.ancestor_in(person, layer0) == person  # a target maps to itself
    assert h.ancestor_in(person, h.layers()[1]) is None  # no ancestor at all
    assert h.ancestor_in(brown, [h.mid_of("Bear"), carnivore]) == h.mid_of("Bear")


def test_ancestor_overrides(hierarchy):
    h = hierarchy
    teddy, carnivore, toy, person = mids(h, "Teddy bear", "Carnivore", "Toy", "Person")
    layer0 = h.layers()[0]
    assert h.ancestor_in(teddy, layer0, overrides={teddy: carnivore}) == carnivore
    assert h.ancestor_in(teddy, layer0, overrides={h.mid_of("Man"): person}) == toy  # other classes' overrides
    with pytest.raises(HierarchyError, match=f"override {teddy} -> {person}: not a target ancestor"):
        h.ancestor_in(teddy, layer0, overrides={teddy: person})
    with pytest.raises(HierarchyError, match="not a target ancestor"):  # an ancestor, but not a target
        h.ancestor_in(teddy, [toy, carnivore], overrides={teddy: h.mid_of("Bear")})


def test_tie_break_is_class_order():
    # X has two parents one edge away, both targets: the one appearing first in the JSON wins.
    tree = {
        "LabelName": ROOT_MID,
        "Subcategory": [
            {"LabelName": "/m/b", "Subcategory": [{"LabelName": "/m/x"}]},
            {"LabelName": "/m/a", "Subcategory": [{"LabelName": "/m/x"}]},
        ],
    }
    h = Hierarchy.from_tree(tree)
    assert h.classes == ("/m/b", "/m/x", "/m/a")
    assert h.ancestor_in("/m/x", ["/m/a", "/m/b"]) == "/m/b"
    assert h.names["/m/x"] == "/m/x"  # no class CSV: MIDs name themselves


def test_other_groupings(hierarchy):
    h = hierarchy
    l0, l1, l2 = h.layers([[0], [1], [2]])
    assert (len(l0), len(l1), len(l2)) == (213, 82, 5)
    assert h.mid_of("Teddy bear") in l2
    assert [len(x) for x in h.layers([[0, 1, 2]])] == [300]
    assert [len(x) for x in h.layers([[0], [1, 2, 3, 4]])] == [213, 87]  # unused depths are fine
    with pytest.raises(HierarchyError, match="depth 2, in no group"):
        h.layers([[0], [1]])
    with pytest.raises(HierarchyError, match="depth 1 is in layer groups 0 and 1"):
        h.layers([[0, 1], [1, 2]])


def test_label_expansion(hierarchy):
    h = hierarchy
    teddy, toy, bear, carnivore = mids(h, "Teddy bear", "Toy", "Bear", "Carnivore")
    pos = h.expand_positive(teddy)
    assert pos[0] == teddy and set(pos) == {teddy, toy, bear, carnivore} and len(pos) == 4
    assert h.expand_positive(h.mid_of("Person")) == (h.mid_of("Person"),)
    neg = h.expand_negative(carnivore)
    assert neg[0] == carnivore
    assert {teddy, bear, *mids(h, "Brown bear", "Polar bear")} <= set(neg)
    assert toy not in neg and len(neg) == len(set(neg)) == 1 + len(h.descendants(carnivore))
    assert h.expand_negative(teddy) == (teddy,)


def test_to_tree_and_subset_round_trip(hierarchy, tmp_path):
    h = hierarchy
    assert Hierarchy.from_tree(h.to_tree(), h.names) == h
    keep = {*mids(h, "Person", "Man", "Woman", "Carnivore", "Bear", "Brown bear", "Toy", "Teddy bear")}
    sub = h.subset(keep)
    assert set(sub.classes) == keep and sub.max_depth == 2
    assert names(sub, sub.multi_parent_classes()) == ["Teddy bear"]
    assert [len(x) for x in sub.layers()] == [3, 5]
    p = tmp_path / "sub.json"
    p.write_text(json.dumps(sub.to_tree()))
    assert Hierarchy.from_tree(json.loads(p.read_text()), sub.names) == sub
    with pytest.raises(HierarchyError, match="kept without its ancestors"):
        h.subset(mids(h, "Brown bear", "Bear"))


def test_real_600_with_parts(oid_data):
    h = Hierarchy.from_files(str(oid_data / H600), str(oid_data / C600))
    assert len(h) == 601
    assert len(h.part_edges) == 39
    assert h.max_depth == 4
    building, human_body, person = h.mid_of("Building"), h.mid_of("Human body"), h.mid_of("Person")
    assert (person, human_body) in h.part_edges
    assert sum(w == building for w, _ in h.part_edges) == 21
    # Part edges are not Subcategory edges: no part lists its whole as a parent.
    assert all(whole not in h.parents(part) and whole not in h.ancestors(part) for whole, part in h.part_edges)
    assert h.mid_of("Human ear") in h.roots()  # only ever a Part: a class without a parent
    assert Hierarchy.from_tree(h.to_tree(), h.names) == h


# ------------------------------------------------------------------------------------- errors
def test_malformed_files_name_file_and_key(tmp_path, oid_data):
    classes = str(oid_data / "oid-challenge-2019-classes-description-segmentable300.csv")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"LabelName": "/m/0bl9f", "Subcategory": [')
    with pytest.raises(HierarchyError, match=f"^{bad_json}: not valid JSON"):
        Hierarchy.from_files(str(bad_json), classes)

    no_label = tmp_path / "nolabel.json"
    no_label.write_text(json.dumps({"LabelName": ROOT_MID, "Subcategory": [{"LabelName": "/m/a"}, {"Sub": []}]}))
    with pytest.raises(HierarchyError, match=f"^{no_label}: node at root.Subcategory\\[1\\] has no 'LabelName'"):
        Hierarchy.from_files(str(no_label))

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"LabelName": ROOT_MID, "Subcategory": [{"LabelName": "/m/a", "Subcat": []}]}))
    with pytest.raises(
        HierarchyError, match=f"^{unknown}: node /m/a at root.Subcategory\\[0\\] has unknown keys \\['Subcat'\\]"
    ):
        Hierarchy.from_files(str(unknown))

    wrong_root = tmp_path / "root.json"
    wrong_root.write_text(json.dumps({"LabelName": "/m/x"}))
    with pytest.raises(HierarchyError, match=f"^{wrong_root}: root LabelName must be {ROOT_MID}"):
        Hierarchy.from_files(str(wrong_root))

    # MIDs of the hierarchy without a class description.
    with pytest.raises(HierarchyError, match="MIDs have no class description"):
        Hierarchy.from_files(str(oid_data / H600), classes)


def test_bad_class_csv_names_line(tmp_path):
    p = tmp_path / "classes.csv"
    p.write_text("/m/a,Apple\n/m/b,Banana\nnot-a-mid,Cherry\n")
    with pytest.raises(HierarchyError, match=f"^{p}:3: expected 'MID,Name'"):
        read_class_descriptions(str(p))
    p.write_text("/m/a,Apple\n/m/b,Banana,extra\n")
    with pytest.raises(HierarchyError, match=f"^{p}:2: expected 'MID,Name'"):
        read_class_descriptions(str(p))
    p.write_text("/m/a,Apple\n/m/a,Again\n")
    with pytest.raises(HierarchyError, match=f"^{p}:2: duplicate MID /m/a"):
        read_class_descriptions(str(p))
    p.write_text("")
    with pytest.raises(HierarchyError, match="no classes"):
        read_class_descriptions(str(p))


def test_builtin_is_the_real_file(hierarchy):
    assert Hierarchy.builtin() == hierarchy


# ---------------------------------------------------------------------------------------- CLI
def test_cli_prints_table_and_writes_json(tmp_path, capsys, oid_data):
    from hierseg_cli.main import main

    out = tmp_path / "table.json"
    assert main(["hierarchy", "--output_json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "300 classes, max depth 2, 25 parents" in text
    assert "multi-parent: Teddy bear (/m/0kmg4) under Toy, Bear" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("Layer")}
    assert rows == {"Layer0": ["0", "213", "23"], "Layer1": ["1,2", "87", "2"]}  # depths, classes, parents
    table = json.loads(out.read_text())
    assert table["num_classes"] == 300 and [x["num_classes"] for x in table["layers"]] == [213, 87]
    teddy = next(c for c in table["layers"][1]["classes"] if c["name"] == "Teddy bear")
    assert teddy["depths"] == [1, 2] and teddy["parents"] == ["Toy", "Bear"]

    assert (
        main(
            [
                "hierarchy",
                "--hierarchy",
                str(oid_data / H600),
                "--classes",
                str(oid_data / C600),
                "--depth_groups",
                "0;1;2,3,4",
                "--list",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text.startswith("601 classes, max depth 4")
    assert "Human ear" in text  # --list prints every class
