"""Benchmark: the whole chain at Goodreads scale, stage by stage, through the real CLIs.

    python benchmarks/bench_scale.py [--ratings 100000000] [--books 1000000] [--users 876000]
        [--top_books 50000] [--epochs 1] [--work /tmp/bench_scale] [--stages ...]
        [--preprocess_args "..."] [--train_args "..."] [--neighbors_args "..."]
        [--explorer_args "..."]
    make scale            # the same, with the defaults

Generates (once; reused when complete, so the chain can be re-timed) interactions in
the UCSD shape with `sample_goodreads`: 100M rows, 876k users, 1M books, i.e. the
published 228M / 876k / 2.36M with books scaled to the rows. Then runs, each as a
fresh `python -m` process on the local runner, with the options a user would choose
for a book map:

    beam_jobs.preprocess --top_books 50000 -> model.train --epochs 1
    -> graph_export.neighbors -> graph_export.explorer

and prints one table: per stage the wall time of the whole command, a throughput
(input rows/s for preprocess; training examples x epochs / s for train, counting the
whole command, evaluation and export included; scores/s = books x books / s for the
neighbours; books/s for the explorer) and peak memory: the stage's process tree is
polled from /proc every 0.5 s (VmHWM, the peak resident set, is lost when a process
exits; the stage's own process is read exactly from wait4), giving the largest single
process and the sum of per-process peaks (an upper bound on the stage's memory).
The baseline is the issue's target on this 2-core / 24 GB machine, checked in the
same run: the chain (generation excluded) within 30 minutes and no stage above 6 GB
(the sum of per-process peaks). The table is also written as JSON (--json).

Extra options go to one stage with --<stage>_args (e.g. --train_args "--eval_users
20000"); --stages re-runs only some stages on the outputs already in --work.
Small try-out (a few minutes):

    python benchmarks/bench_scale.py --ratings 2000000 --books 100000 --users 20000 \
        --top_books 5000 --work /tmp/bench_scale_small
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import machine, results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("preprocess", "train", "neighbors", "explorer")
TARGET_TOTAL_S = 30 * 60
TARGET_STAGE_BYTES = 6 * 1024**3
POLL_S = 0.5  # one poll reads every /proc/*/stat: ~9 ms of CPU
OUTPUT_OF = {"preprocess": "prep", "train": "model", "neighbors": "graph", "explorer": "explorer"}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench_scale.py",
        description="Time the whole chain (preprocess -> train -> neighbours -> explorer) "
                    "on generated Goodreads-scale data; one table of time, throughput and "
                    "peak memory per stage.")
    parser.add_argument("--ratings", type=int, default=100_000_000, help="interactions (100M)")
    parser.add_argument("--books", type=int, default=1_000_000, help="books (1M)")
    parser.add_argument("--users", type=int, default=876_000, help="users (876k, as UCSD)")
    parser.add_argument("--seed", type=int, default=7, help="sample_goodreads seed")
    parser.add_argument("--top_books", type=int, default=50_000,
                        help="preprocess --top_books: the books on the map (50,000)")
    parser.add_argument("--epochs", type=int, default=1, help="model.train --epochs (1)")
    parser.add_argument("--work", default="/tmp/bench_scale",
                        help="directory for the data and every stage's output")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated stages to run, in chain order (default: all); "
                             "the others' outputs must already be in --work")
    parser.add_argument("--regenerate", action="store_true",
                        help="generate the data again even if --work has it")
    parser.add_argument("--json", default=None,
                        help="where to write the table as JSON (default WORK/bench_scale.json)")
    for stage in STAGES:
        parser.add_argument(f"--{stage}_args", default="",
                            help=f"extra command-line options for the {stage} stage (one string)")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown or not args.stages:
        parser.error(f"--stages: unknown {unknown or 'empty list'}; choose from {', '.join(STAGES)}")
    if min(args.ratings, args.books, args.users, args.top_books, args.epochs) < 1:
        parser.error("--ratings, --books, --users, --top_books and --epochs must be >= 1")
    return args


class TreeMemory:
    """Peak resident memory of every process in a tree, from /proc.

    VmHWM is per process and vanishes when it exits, so the tree is polled while it
    runs; a process that lives less than one poll interval may be missed.
    """

    def __init__(self, root):
        self.root = root
        self.peak_kb = {}  # (pid, start time) -> VmHWM in kB

    def poll(self):
        parent, start = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
            parent[int(entry)], start[int(entry)] = int(fields[1]), fields[19]
        children = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        todo = [self.root] if self.root in parent else []
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            kb = _vm_hwm_kb(pid)
            if kb is not None:
                key = (pid, start[pid])
                self.peak_kb[key] = max(kb, self.peak_kb.get(key, 0))

    def add_root_peak(self, kb):
        """The root's exact peak from wait4 (its ru_maxrss), once it has exited."""
        key = next((k for k in self.peak_kb if k[0] == self.root), (self.root, "exited"))
        self.peak_kb[key] = max(kb, self.peak_kb.get(key, 0))

    def summary(self):
        peaks = list(self.peak_kb.values()) or [0]
        return {"peak_rss_max_bytes": max(peaks) * 1024, "peak_rss_sum_bytes": sum(peaks) * 1024,
                "processes": len(self.peak_kb)}


def _vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_stage(name, argv, log_path):
    """Runs `python -m ...argv` to completion; its wall time and process-tree memory."""
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        memory = TreeMemory(proc.pid)
        while True:
            memory.poll()
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    memory.add_root_peak(usage.ru_maxrss)
    if proc.returncode != 0:
        with open(log_path, errors="replace") as log:
            tail = log.read()[-3000:]
        raise StageFailed(f"{name} failed (exit {proc.returncode}); last output "
                          f"(whole log: {log_path}):\n{tail}")
    return {"stage": name, "command": "python -m " + shlex.join(argv), "wall_s": wall,
            **memory.summary()}


class StageFailed(Exception):
    pass


def generated_data(args, log_dir):
    """The sample data directory; generates it unless a complete one is there."""
    data = os.path.join(args.work, f"goodreads_r{args.ratings}_b{args.books}_u{args.users}"
                                   f"_s{args.seed}")
    marker = os.path.join(data, ".complete")
    if os.path.exists(marker) and not args.regenerate:
        return data, None
    shutil.rmtree(data, ignore_errors=True)
    row = run_stage("generate (excluded)", [
        "sample_goodreads", "--output", data, "--ratings", str(args.ratings),
        "--books", str(args.books), "--users", str(args.users), "--seed", str(args.seed)],
        os.path.join(log_dir, "generate.log"))
    row.update(throughput=args.ratings / row["wall_s"], unit="rows/s")
    open(marker, "w").close()
    return data, row


def stage_commands(args, data, paths):
    extra = {stage: shlex.split(getattr(args, f"{stage}_args")) for stage in STAGES}
    return {
        "preprocess": ["beam_jobs.preprocess", "--input", data, "--output", paths["prep"],
                       "--top_books", str(args.top_books), *extra["preprocess"]],
        "train": ["model.train", "--data", paths["prep"], "--output", paths["model"],
                  "--epochs", str(args.epochs), "--verbose", "2", *extra["train"]],
        "neighbors": ["graph_export.neighbors", "--embeddings", paths["model"],
                      "--catalog", paths["prep"], "--output", paths["graph"],
                      *extra["neighbors"]],
        "explorer": ["graph_export.explorer", "--graph", paths["graph"],
                     "--output", paths["explorer"], *extra["explorer"]],
    }


def throughput(stage, args, paths, wall):
    """(value, unit) for a finished stage, from the counts its outputs state."""
    if stage == "preprocess":
        return _manifest(paths)["rows_read"] / wall, "rows/s"
    if stage == "train":
        return _manifest(paths)["train_examples"] * args.epochs / wall, "examples/s"
    books = _manifest(paths)["num_books"]
    if stage == "neighbors":
        return books * books / wall, "scores/s"
    import pyarrow.parquet as pq
    nodes = pq.ParquetFile(os.path.join(paths["graph"], "nodes.parquet")).metadata.num_rows
    return nodes / wall, "books/s"


def _manifest(paths):
    with open(os.path.join(paths["prep"], "manifest.json")) as handle:
        return json.load(handle)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def format_table(rows, total_s, verdict):
    lines = [f"{'stage':<20} {'wall':>9} {'throughput':>22} {'peak RSS max':>13} "
             f"{'sum of peaks':>13} {'procs':>5}"]
    for row in rows:
        lines.append(f"{row['stage']:<20} {_duration(row['wall_s']):>9} "
                     f"{_rate(row['throughput']):>11} {row['unit']:<10} "
                     f"{_gb(row['peak_rss_max_bytes']):>13} {_gb(row['peak_rss_sum_bytes']):>13} "
                     f"{row['processes']:>5}")
    lines.append(f"{'chain total':<20} {_duration(total_s):>9}   "
                 f"(target <= {_duration(TARGET_TOTAL_S)}: {total_s / TARGET_TOTAL_S:.2f}x of it)")
    lines.extend(verdict)
    return "\n".join(lines)


def _duration(seconds):
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _rate(value):
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.1f}"


def _gb(num_bytes):
    return f"{num_bytes / 1024**3:.2f} GB"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.work, exist_ok=True)
    log_dir = os.path.join(args.work, "logs")
    os.makedirs(log_dir, exist_ok=True)
    json_path = args.json or os.path.join(args.work, "bench_scale.json")
    paths = {name: os.path.join(args.work, name) for name in ("prep", "model", "graph")}
    paths["explorer"] = os.path.join(args.work, "explorer.html")
    print(f"machine: {machine.describe()} at start", flush=True)
    rows, error, data, generation = [], None, None, None
    try:
        data, generation = generated_data(args, log_dir)
        print(f"data: {data}" + (" (reused)" if generation is None else
                                 f" (generated in {_duration(generation['wall_s'])})"), flush=True)
        commands = stage_commands(args, data, paths)
        for stage in (s for s in STAGES if s in args.stages):
            _remove(paths[OUTPUT_OF[stage]])
            print(f"{stage}: python -m {shlex.join(commands[stage])}", flush=True)
            row = run_stage(stage, commands[stage], os.path.join(log_dir, f"{stage}.log"))
            row["throughput"], row["unit"] = throughput(stage, args, paths, row["wall_s"])
            print(f"  {_duration(row['wall_s'])}, peak {_gb(row['peak_rss_max_bytes'])}", flush=True)
            rows.append(row)
    except StageFailed as failed:
        error = str(failed)
    total = sum(row["wall_s"] for row in rows)
    over = [row["stage"] for row in rows if row["peak_rss_sum_bytes"] > TARGET_STAGE_BYTES]
    scale = "" if args.ratings == 100_000_000 else f" (set for 100M interactions; this run: {args.ratings:,})"
    whole_chain = len(rows) == len(STAGES)
    verdict = [
        f"target{scale}: chain <= 30 min "
        + (("met" if total <= TARGET_TOTAL_S else "MISSED") if whole_chain
           else f"not judged: {len(rows)} of {len(STAGES)} stages ran"),
        "target: no stage above 6 GB (sum of per-process peaks) "
        + ("MISSED by " + ", ".join(over) if over else "met" if rows else "not judged"),
        f"load average {os.getloadavg()[0]:.1f} at the end (2-core machine; shared, noisy)"]
    table = [generation] + rows if generation else rows
    print()
    print(format_table(table, total, verdict))
    for row in rows:
        results.headline(f"{row['stage']}, {args.ratings / 1e6:g}M generated interactions "
                         f"(`--top_books {args.top_books}`)",
                         f"{_duration(row['wall_s'])}, peak {_gb(row['peak_rss_max_bytes'])}")
    if whole_chain:
        results.headline(f"the whole chain, {args.ratings / 1e6:g}M generated interactions",
                         f"{_duration(total)} ({verdict[0]}; {verdict[1]})")
    if rows:
        results.record(f"Scale: {args.ratings:,} interactions, --top_books {args.top_books:,}, "
                       f"stages {','.join(r['stage'] for r in rows)}",
                       ["```", format_table(table, total, verdict), "```"])
    result = {"ratings": args.ratings, "books": args.books, "users": args.users,
              "top_books": args.top_books, "epochs": args.epochs, "data": data,
              "stages": table, "chain_total_s": total, "target_total_s": TARGET_TOTAL_S,
              "target_stage_bytes": TARGET_STAGE_BYTES,
              "total_met": whole_chain and total <= TARGET_TOTAL_S,
              "memory_met": bool(rows) and not over,
              "complete": error is None and len(rows) == len(args.stages), "error": error}
    with open(json_path + ".tmp", "w") as handle:
        json.dump(result, handle, indent=2)
    os.replace(json_path + ".tmp", json_path)
    print(f"\nJSON: {json_path}")
    if error:
        raise SystemExit(error)


if __name__ == "__main__":
    main()
