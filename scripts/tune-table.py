#!/usr/bin/env python3
"""Runs `looptune tune --json` on each spec and prints a Markdown table: the command's wall time, the search's time,
the result's GFLOPS and its ratio to the best library timed side by side in the same run; with more than one spec, a
last row with the geometric mean of the ratios (issue 17's yardstick).

    python3 scripts/tune-table.py                                  # mm N N N for N = 64 ... 4096
    python3 scripts/tune-table.py --spec "mm 768 3072 768" --budget 2s
    python3 scripts/tune-table.py --spec "mm 128 2304 768" --spec "mm 128 3072 768"   # a geomean row too
    LOOPTUNE="dotnet path/to/looptune.dll" python3 scripts/tune-table.py

Estimated figures (a run too long to time whole, timed on a slice) are marked with a star."""
import argparse, json, math, os, shlex, subprocess, sys, time

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", action="append", help="a computation (repeatable); default mm N N N, N = 64 ... 4096")
    ap.add_argument("--budget", default="1s", help="tune's --budget (default 1s)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    a = ap.parse_args()
    specs = a.spec or [f"mm {n} {n} {n}" for n in (64, 128, 256, 512, 1024, 2048, 4096)]
    tool = shlex.split(os.environ.get("LOOPTUNE", "dotnet src/LoopTune.Cli/bin/Release/net10.0/looptune.dll"))
    if not a.json:
        print("| problem | GFLOP | `tune` wall time | search | GFLOPS | best library | ratio to best library |")
        print("|---|--:|--:|--:|--:|--:|--:|")
    ratios_seen = []
    for spec in specs:
        start = time.monotonic()
        p = subprocess.run(tool + ["tune", "--spec", spec, "--budget", a.budget, "--json"], capture_output=True, text=True)
        wall = time.monotonic() - start
        if p.returncode != 0:
            sys.exit(f"tune --spec '{spec}' failed ({p.returncode}): {p.stderr.strip()}")
        o = json.loads(p.stdout)
        ratios = {k: v for k, v in o["ratios"].items() if v}
        best = min(ratios, key=ratios.get) if ratios else None
        calls = o.get("peer_calls") or {}
        row = {"spec": spec, "gflop": o["gflops"] * o["runtime_s"], "wall_s": wall, "search_s": o["policy_seconds"] + o["measure_seconds"],
               "gflops": o["gflops"], "estimated": o["estimated"], "best_library": best,
               "best_gflops": o["peers"].get(best) if best else None, "best_estimated": bool(best and "estimated" in (calls.get(best) or "")),
               "ratio": ratios.get(best) if best else None, "schedule": o["schedule"]}
        if row["ratio"]:
            ratios_seen.append(row["ratio"])
        if a.json:
            print(json.dumps(row))
            continue
        star = lambda e: "*" if e else ""
        lib = f"{best} {row['best_gflops']:.1f}{star(row['best_estimated'])}" if best else "n/a"
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] else "n/a"
        print(f"| {spec} | {row['gflop']:.2f} | {wall:.1f} s | {row['search_s']:.2f} s | {o['gflops']:.1f}{star(o['estimated'])} | {lib} | {ratio} |", flush=True)
    if len(ratios_seen) > 1:
        geomean = math.exp(sum(math.log(r) for r in ratios_seen) / len(ratios_seen))
        if a.json:
            print(json.dumps({"geomean_ratio": geomean, "count": len(ratios_seen)}))
        else:
            print(f"| geometric mean ({len(ratios_seen)}) | | | | | | {geomean:.3f}x |")

if __name__ == "__main__":
    main()
