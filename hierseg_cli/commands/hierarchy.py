"""Print the layer table of an Open Images hierarchy: classes per layer, parents, max depth and
multi-parent classes; optionally write it as JSON."""

from __future__ import annotations

import argparse
import json

from hierseg.hierarchy import Hierarchy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hierarchy", help="hierarchy JSON (local or gs://); default: the shipped 300-class file")
    p.add_argument(
        "--classes",
        help="class-description CSV (MID,Name, no header); default: the shipped one "
        "when --hierarchy is not given, else MIDs are used as names",
    )
    p.add_argument(
        "--depth_groups", default="0;1,2", help="depth grouping into layers: groups separated by ';', depths by ','"
    )
    p.add_argument("--output_json", help="also write the full layer table as JSON to this file")
    p.add_argument("--list", action="store_true", help="list every class of every layer")


def parse_depth_groups(text: str) -> list[list[int]]:
    try:
        return [[int(d) for d in g.split(",") if d.strip()] for g in text.split(";") if g.strip()]
    except ValueError:
        raise SystemExit(f"--depth_groups: expected e.g. '0;1,2', got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    if args.hierarchy:
        h = Hierarchy.from_files(args.hierarchy, args.classes)
    else:
        h = Hierarchy.builtin()
    table = h.layer_table(parse_depth_groups(args.depth_groups))
    print(f"{table['num_classes']} classes, max depth {table['max_depth']}, {table['num_parents']} parents")
    for m in table["multi_parent_classes"]:
        print(f"multi-parent: {m['name']} ({m['mid']}) under {', '.join(m['parents'])}")
    print(f"{'layer':<7}{'depths':<10}{'classes':>8}{'parents':>9}")
    for layer in table["layers"]:
        n_par = sum(1 for c in layer["classes"] if c["num_children"])
        print(f"Layer{layer['layer']:<2}{','.join(map(str, layer['depths'])):<10}{layer['num_classes']:>8}{n_par:>9}")
        if args.list:
            for c in layer["classes"]:
                up = f"  <- {', '.join(c['parents'])}" if c["parents"] else ""
                print(f"    {c['id']:>4} {c['mid']:<12} {c['name']}{up}")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(table, f, indent=1)
        print(f"wrote {args.output_json}")
    return 0
