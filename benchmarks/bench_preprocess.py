"""Benchmark: `beam_jobs.preprocess` (local runner) vs DuckDB doing the same selection + split.

    python benchmarks/bench_preprocess.py [--ratings 20000000] [--repeats 3] [--quick]

Generates (once, cached under --work) a UCSD-layout data set with
`sample_goodreads`, then times in the same run, alternating, --repeats times:

* the preprocess job, each run in a fresh Python process, with its default local
  runner (FnApiRunner, one in-process worker whose heavy steps use every core
  through native threads) and, unless --quick, with one FnApiRunner worker
  process per core. Two figures per run: "job" from the call of
  `preprocess.run` to its return (TensorFlow import, pipeline construction,
  tf.Transform and every output included; interpreter start and the import of
  Beam excluded) and "process", the wall time of the whole child process;
* DuckDB on the same files and threads: id maps, catalogue check, rating filter,
  de-duplication, top books, user filter, hash split -> two Parquet files.

Prints the median seconds, input interactions per second and the ratio to
DuckDB's median. DuckDB writes plain Parquet (no TFRecords, no vocabularies, no
TF graph), so it is a lower bound for the same selection work, not an
equivalent job.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import results  # noqa: E402
from benchmarks.machine import peak_rss_mb  # noqa: E402


def ensure_data(work, ratings, books, users):
    from sample_goodreads import generate as sample_data
    data = os.path.join(work, f"goodreads_{ratings}")
    marker = os.path.join(data, ".complete")
    if not os.path.exists(marker):
        shutil.rmtree(data, ignore_errors=True)
        sample_data.run(["--output", data, "--ratings", str(ratings), "--books", str(books),
                         "--users", str(users), "--seed", "7"])
        open(marker, "w").close()
    return data


def child(argv):
    """Runs preprocess in this (fresh) process; prints its timings as JSON on the last line."""
    import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow)
    from beam_jobs import preprocess
    job_start = time.perf_counter()
    manifest = preprocess.run(argv)
    print(json.dumps({"job_s": time.perf_counter() - job_start, "peak_rss_mb": peak_rss_mb(),
                      "rows_read": manifest["rows_read"], "kept": manifest["kept"]}))


def run_preprocess(data, out, top_books, min_user_ratings, beam_args=()):
    """(job s, whole-process s, rows read, kept, peak RSS MB) of one preprocess run in a child process."""
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--input", data, "--output", out, "--top_books", str(top_books),
            "--min_user_ratings", str(min_user_ratings), *beam_args]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--", *argv],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"preprocess failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["job_s"], wall, result["rows_read"], result["kept"], result["peak_rss_mb"]


def run_duckdb(data, out, top_books, min_user_ratings, threads):
    import duckdb
    from pipeline_common import artifacts
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""
        CREATE TEMP TABLE kept AS
        WITH raw AS (
            SELECT * FROM read_csv('{data}/{artifacts.INTERACTIONS_CSV}', header = true,
                columns = {{'user_id': 'BIGINT', 'book_id': 'BIGINT', 'is_read': 'BIGINT',
                            'rating': 'BIGINT', 'is_reviewed': 'BIGINT'}})),
        umap AS (SELECT * FROM read_csv('{data}/{artifacts.USER_ID_MAP}', header = true,
                columns = {{'user_id_csv': 'BIGINT', 'user_id': 'VARCHAR'}})),
        bmap AS (SELECT * FROM read_csv('{data}/{artifacts.BOOK_ID_MAP}', header = true,
                columns = {{'book_id_csv': 'BIGINT', 'book_id': 'BIGINT'}})),
        catalog AS (SELECT DISTINCT CAST(book_id AS BIGINT) AS book_id
                    FROM read_json('{data}/{artifacts.BOOKS_JSON}.gz', columns = {{'book_id': 'VARCHAR'}})),
        valid AS (
            SELECT u.user_id, b.book_id, r.rating
            FROM raw r JOIN umap u ON r.user_id = u.user_id_csv
                       JOIN bmap b ON r.book_id = b.book_id_csv
                       SEMI JOIN catalog c ON b.book_id = c.book_id
            WHERE r.rating BETWEEN 1 AND 5),
        dedup AS (SELECT user_id, book_id, max(rating) AS rating FROM valid GROUP BY ALL),
        top AS (SELECT book_id FROM dedup GROUP BY book_id
                ORDER BY count(*) DESC, book_id ASC LIMIT {top_books}),
        in_top AS (SELECT d.* FROM dedup d SEMI JOIN top t ON d.book_id = t.book_id),
        users AS (SELECT user_id FROM in_top GROUP BY user_id HAVING count(*) >= {min_user_ratings})
        SELECT i.*, (hash(i.user_id || '|' || i.book_id || '|42') % 1000) < 100 AS is_eval
        FROM in_top i SEMI JOIN users u ON i.user_id = u.user_id
    """)
    con.execute(f"COPY (SELECT user_id, book_id, rating FROM kept WHERE NOT is_eval) TO '{out}/train.parquet'")
    con.execute(f"COPY (SELECT user_id, book_id, rating FROM kept WHERE is_eval) TO '{out}/eval.parquet'")
    kept = con.execute("SELECT count(*) FROM kept").fetchone()[0]
    return time.perf_counter() - start, kept


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--child", "--"]:
        return child(argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=20_000_000)
    parser.add_argument("--books", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=300_000)
    parser.add_argument("--top_books", type=int, default=3000)
    parser.add_argument("--min_user_ratings", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each system (medians are shown)")
    parser.add_argument("--work", default="/tmp/bench_preprocess")
    parser.add_argument("--quick", action="store_true", help="only the default runner mode")
    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING)
    data = ensure_data(args.work, args.ratings, args.books, args.users)
    cores = multiprocessing.cpu_count()
    load = os.getloadavg()[0]
    modes = {"preprocess, default (in-process)": [],
             f"preprocess, {cores} worker processes": ["--direct_running_mode=multi_processing",
                                                       f"--direct_num_workers={cores}"]}
    if args.quick:
        modes = dict(list(modes.items())[:1])
    runs = {name: [] for name in modes}
    duck = []
    for _ in range(args.repeats):
        duck.append(run_duckdb(data, os.path.join(args.work, "duckdb_out"), args.top_books,
                               args.min_user_ratings, cores))
        for name, beam_args in modes.items():
            runs[name].append(run_preprocess(data, os.path.join(args.work, "prep_out"), args.top_books,
                                             args.min_user_ratings, beam_args))
    duck_s = statistics.median(d[0] for d in duck)
    duck_kept = duck[0][1]
    rows = next(iter(runs.values()))[0][2]
    print()
    print(f"input: {rows:,} interactions ({args.books:,} books, {args.users:,} users), "
          f"top_books={args.top_books}, {cores} cores, load average before: {load:.1f}, "
          f"median of {args.repeats} runs")
    print(f"{'system':<48}{'seconds':>9}{'interactions/s':>16}{'kept':>12}{'vs DuckDB':>11}")
    for name, measured in runs.items():
        kept = measured[0][3]
        for label, column in (("job", 0), ("whole process", 1)):
            seconds = statistics.median(r[column] for r in measured)
            print(f"{name + ', ' + label:<48}{seconds:>9.1f}{rows / seconds:>16,.0f}{kept:>12,}"
                  f"{seconds / duck_s:>10.1f}x")
        print(f"  peak RSS of the launching process (worker processes not included): "
              f"{max(r[4] for r in measured):,.0f} MB")
        if duck_kept != kept:
            print(f"  note: kept counts differ from DuckDB ({kept} vs {duck_kept})")
    print(f"{'DuckDB (same selection -> Parquet)':<48}{duck_s:>9.1f}{rows / duck_s:>16,.0f}"
          f"{duck_kept:>12,}{1.0:>10.1f}x")
    print("all runs (s): " + "; ".join(
        f"{name}: " + ", ".join(f"{r[0]:.1f}/{r[1]:.1f}" for r in measured)
        for name, measured in runs.items())
        + "; DuckDB: " + ", ".join(f"{d[0]:.1f}" for d in duck))
    first = next(iter(runs))
    job = statistics.median(r[1] for r in runs[first])
    results.headline(f"preprocess against DuckDB (same selection), {rows / 1e6:g}M generated "
                     f"interactions, {first}", f"{job:.1f} s (DuckDB {duck_s:.1f} s): "
                     f"{rows / job / 1e6:.2f}M interactions/s")


if __name__ == "__main__":
    results.main_recorded(main, "Preprocess against DuckDB")
