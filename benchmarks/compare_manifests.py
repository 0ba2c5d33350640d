"""Do two bundles hold the same variants? Compares manifest OLD with manifest NEW variant by variant: accuracy,
sparsity, parameter counts and every file's sha256 must be equal; variants only NEW has (new methods) are listed,
variants only OLD has are a difference. Used to show that a change of structure left the results as they were.

    python benchmarks/compare_manifests.py OLD/manifest.json NEW/manifest.json

Exit 0 when every variant of OLD is in NEW with equal numbers and files, 1 otherwise; the last line is the ratio
of identical variants to compared ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMPARED = ("accuracy", "sparsity", "sparsity_overall", "params", "nonzero_params", "experiment", "method", "seed")


def files_by_format(model: dict) -> dict[str, str]:
    return {f.get("format", "?"): f.get("sha256") for f in model.get("files", [])}


def differences(old: dict, new: dict) -> list[str]:
    """What differs between two manifest entries of one variant, one line each."""
    out = [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in COMPARED if old.get(key) != new.get(key)]
    old_files, new_files = files_by_format(old), files_by_format(new)
    for fmt in sorted(set(old_files) | set(new_files)):
        if old_files.get(fmt) != new_files.get(fmt):
            out.append(f"file {fmt}: sha256 {str(old_files.get(fmt))[:12]} -> {str(new_files.get(fmt))[:12]}")
    return out


def compare(old: dict, new: dict) -> tuple[int, int, list[str]]:
    """(identical, compared, report lines) for two manifests."""
    old_models = {m["name"]: m for m in old["models"]}
    new_models = {m["name"]: m for m in new["models"]}
    lines, identical = [], 0
    for name, model in old_models.items():
        if name not in new_models:
            lines.append(f"{name}: missing from the new manifest")
            continue
        diff = differences(model, new_models[name])
        identical += not diff
        lines += [f"{name}: {d}" for d in diff]
    lines += [f"{name}: only in the new manifest" for name in new_models if name not in old_models]
    return identical, len(old_models), lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    old, new = (json.loads(p.read_text()) for p in (args.old, args.new))
    identical, compared, lines = compare(old, new)
    print("\n".join(lines) or "no differences")
    print(f"ratio identical/compared variants: {identical}/{compared} = {identical / max(compared, 1):.3f}")
    return 0 if identical == compared else 1


if __name__ == "__main__":
    sys.exit(main())
