"""python -m benchmarks [--quick] [--full] [--out PATH] [--doc PATH] [--plot PATH] [--seed N] [--report-only]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small grid, few runs (< 1 min)")
    ap.add_argument("--full", action="store_true", help="also run the slow alignment case n=16384, d_B=d_A=768")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"), help="JSON results path")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown report path ('' to skip)")
    ap.add_argument("--plot", default=None, help="latency plot path (default: benchmarks-latency.png next to --doc)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: re-render --doc (and the plot) from the existing --out JSON",
    )
    args = ap.parse_args(argv)

    if str(ROOT) not in sys.path:  # allow running from anywhere
        sys.path.insert(0, str(ROOT))
    from .config import make_mode
    from .report import write_report
    from .runner import run

    out = Path(args.out)
    if args.report_only:
        results = json.loads(out.read_text(encoding="utf-8"))
    else:
        results = run(make_mode(args.quick, args.full), seed=args.seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"[bench] wrote {out}", file=sys.stderr)
    if args.doc:
        doc = Path(args.doc)
        plot = Path(args.plot) if args.plot else doc.parent / "benchmarks-latency.png"
        note = write_report(results, doc, plot, out)
        print(f"[bench] wrote {doc}" + (f" ({note})" if note else f" and {plot}"), file=sys.stderr)
    if not args.report_only:
        print(f"[bench] done in {results['runtime_s']:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
