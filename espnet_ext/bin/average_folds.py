"""Average the scores of cross-validation folds (e.g. IEMOCAP's five leave-one-session-out runs).

Looks for ``<fold_dir>/**/scores.json`` under each fold dir (exp/s1 ... exp/s5), matches the same system
across folds by its path with the fold's set suffix removed (``test_s3`` -> ``test``), and writes the mean
and the per-fold values of every numeric score to --output (JSON) and a markdown table to stdout.
"""
import json
import re
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from espnet_ext import cli


def collect(fold_dirs: List[Path]) -> Dict[str, List[dict]]:
    systems: Dict[str, List[dict]] = {}
    for fold in fold_dirs:
        for path in sorted(fold.glob("**/scores.json")):
            key = re.sub(r"_s\d+$", "", str(path.parent.relative_to(fold)))
            key = "/".join(re.sub(r"_s\d+$", "", part) for part in key.split("/"))
            systems.setdefault(key, []).append(json.loads(path.read_text()))
    return systems


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("fold_dirs", type=Path, nargs="+")
    p.add_argument("--output", type=Path, required=True)
    args = cli.parse(p, argv)
    systems = collect(args.fold_dirs)
    if not systems:
        raise SystemExit(f"no scores.json under {[str(d) for d in args.fold_dirs]}")
    result = {}
    for key, folds in sorted(systems.items()):
        numeric = sorted({k for f in folds for k, v in f.items() if isinstance(v, (int, float))})
        result[key] = {"folds": len(folds),
                       **{k: {"mean": float(np.mean([f[k] for f in folds if k in f])),
                              "per_fold": [f.get(k) for f in folds]} for k in numeric}}
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    cols = ["rougeL", "emotion_WA", "emotion_UAR", "pair_sensitivity", "probe_acc"]
    print("| system | folds | " + " | ".join(cols) + " |\n|---" * 1 + "|---" * (len(cols) + 1) + "|")
    for key, r in result.items():
        print(f"| {key} | {r['folds']} | " + " | ".join(f"{r[c]['mean']:.3f}" if c in r else "–" for c in cols) + " |")
    if any(r["folds"] != len(args.fold_dirs) for r in result.values()):
        print(f"warning: some systems were scored in fewer than {len(args.fold_dirs)} folds", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
