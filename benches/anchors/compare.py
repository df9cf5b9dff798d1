#!/usr/bin/env python3
"""Side-by-side summary of kyro-bench / anchor JSON files.

For each file: build seconds, index bytes beyond the raw f32 vectors, and the
QPS at a target recall, linearly interpolated between the two sweep points that
bracket it (runs sorted by recall; "n/a" when the sweep never reaches it).

Usage:
    python3 benches/anchors/compare.py --recall 0.95 bench-out/*.json
"""

import argparse
import json


def qps_at(runs, target):
    """QPS at `target` recall, interpolated on the recall axis."""
    points = sorted((r["recall"], r["qps"]) for r in runs)
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if points and points[0][0] >= target:
        return points[0][1]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recall", type=float, default=0.95)
    p.add_argument("json", nargs="+")
    args = p.parse_args()
    rows = []
    for path in args.json:
        with open(path) as f:
            report = json.load(f)
        raw = report["n"] * report["dim"] * 4
        overhead = report.get("index_bytes", 0) - raw
        rows.append((
            report.get("engine", path),
            report["build_seconds"],
            qps_at(report["runs"], args.recall),
            overhead / report["n"],
            report.get("peak_rss_bytes") or 0,
        ))
    print(f"{'engine':<14} {'build s':>8} {'QPS@' + str(args.recall):>10} {'B/vec over raw':>15} {'peak RSS MiB':>13}")
    for engine, build, qps, over, rss in rows:
        qps_s = f"{qps:10.0f}" if qps is not None else f"{'n/a':>10}"
        print(f"{engine:<14} {build:8.2f} {qps_s} {over:15.1f} {rss / 2**20:13.1f}")


if __name__ == "__main__":
    main()
