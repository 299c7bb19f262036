"""Annotation tasks per minute with 1, 2 and 4 simulated annotators, on a PostgreSQL catalog.

    python bench/annotation_throughput.py [--postgres URL] [--videos N] [--phase P] [--workers 1,2,4]

Seeded synthetic videos are ingested into a database the benchmark creates on the server
(and drops at the end) and a temporary local object store. For each crew size it annotates
every object once more (a new annotation round, so each run has the same work) three ways:

- ``plain``: the crew as ``dataengine annotate`` runs it, one thread per annotator, no Prefect
  (:func:`phases.workers.drain_in_threads`): the baseline;
- ``prefect threads``: the ``annotate`` flow with the thread-pool task runner, one Prefect
  task per masklet;
- ``prefect dask``: the same flow on a local Dask cluster of one single-threaded process per
  annotator (the task runner that scales to a cluster of machines), started before timing.

It prints tasks per minute, the speedup over one annotator of the same kind, and each
Prefect run's rate against the plain crew of the same size. ``--repeat`` passes each run
every configuration once (so a burst of load elsewhere hits them alike) and each
configuration's best run is kept: on a shared machine, the least disturbed run is the one
that measures the code. Prefect's API (a server the benchmark starts on loopback,
unless ``PREFECT_API_URL`` names one) is up before anything is timed. Simulated annotators with a
simulated model are CPU-bound Python, so threads share one interpreter lock and processes
share the machine's cores: on 2 cores, 4 workers cannot beat 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # one line per task run otherwise
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import psycopg  # noqa: E402

from engine.settings import load_settings  # noqa: E402
from engine.simulated_segmenter import SimulatedSegmenterSource  # noqa: E402
from engine.synthetic import SyntheticSpec, synthesize  # noqa: E402
from flows.resources import close_resources, release_thread_connections, resources  # noqa: E402
from phases.workers import Worker, drain_in_threads, enqueue_annotation  # noqa: E402
from storage.ingest_sources import ingest_sources  # noqa: E402

DEFAULT_POSTGRES = os.environ.get("DATAENGINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SPEC = SyntheticSpec(width=320, height=240, source_frames=96, objects=3, parts=0)  # 24 sampled frames, 3 objects
MODES = ("plain", "prefect threads", "prefect dask")


@dataclass(frozen=True)
class Run:
    mode: str
    workers: int
    tasks: int
    seconds: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.tasks / self.seconds


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new database on the server, dropped afterwards (whatever happens in between)."""
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"dataengine_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        close_resources()
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plain(urls: dict[str, str], phase: int, workers: int, round_: int) -> int:
    res = resources(**urls)
    enqueue_annotation(res.queue, res.annotations, phase, round_=round_)
    crew = [
        Worker(f"sim-annotator-{i + 1}", res.queue, res.annotations, SimulatedSegmenterSource()) for i in range(workers)
    ]
    try:
        outcomes = drain_in_threads([lambda w=w: w.annotate_one(phase) for w in crew])
    finally:
        release_thread_connections(res)  # the crew's threads are gone; so must their connections be
    return sum(o.ok for o in outcomes)


def with_prefect(runner: str, dask_address: str | None = None) -> Callable[[dict[str, str], int, int, int], int]:
    def run(urls: dict[str, str], phase: int, workers: int, round_: int) -> int:
        from flows.annotate import annotate

        result = annotate(
            phase=phase,
            workers=workers,
            model="simulated",
            task_runner=runner,
            dask_address=dask_address,
            annotation_round=round_,
            **urls,
        )
        return len(result.masklet_ids)

    return run


@contextmanager
def dask_cluster(workers: int) -> Iterator[str]:
    """A local cluster of single-threaded worker processes, started (and warmed) before timing.

    Starting one takes tens of seconds here (each process imports Prefect and the engine); a
    cluster serves many flow runs, so its start is reported apart from the throughput.
    """
    import distributed

    started = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(lambda: __import__("flows.annotate"))
        print(
            f"  (a local Dask cluster of {workers} processes started in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        yield cluster.scheduler_address


@contextmanager
def prefect_api(home: Path) -> Iterator[None]:
    """A Prefect server on loopback for the benchmark, unless PREFECT_API_URL names one already.

    Needed by Dask's worker processes, which report task runs to the API by URL; set before
    Prefect is first imported, so the benchmark's own flows use it too.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    prefect = str(Path(sys.executable).with_name("prefect"))
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the Prefect server did not start") from None
                time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = url
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def warm_up() -> None:
    """Start Prefect's API (and import the flows) before anything is timed."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def nothing() -> None:
        return None

    nothing()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a database URL on the server to use")
    parser.add_argument("--videos", type=int, default=8, help="synthetic videos (3 objects each: 3 tasks a video)")
    parser.add_argument("--phase", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--workers", default="1,2,4", help="crew sizes, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help=f"which of: {', '.join(MODES)}")
    parser.add_argument("--repeat", type=int, default=3, help="passes over all configurations; each one's best is kept")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    runners = {"plain": plain, "prefect threads": with_prefect("threads")}
    logging.getLogger("distributed").setLevel(logging.ERROR)

    with (
        tempfile.TemporaryDirectory(prefix="dataengine-bench-") as tmp,
        scratch_database(args.postgres) as catalog_url,
        prefect_api(Path(tmp) / "prefect-home"),
    ):
        urls = {"catalog_url": catalog_url, "object_store_url": f"file://{tmp}/objects"}
        paths = synthesize(Path(tmp) / "videos", args.videos, seed=0, spec=SPEC)
        res = resources(**urls)
        ingest_sources([str(p) for p in paths], catalog=res.catalog, store=res.store, settings=load_settings(**urls))
        print(
            f"{args.videos} videos, {args.videos * SPEC.objects} objects, phase {args.phase}, catalog on PostgreSQL, "
            f"{os.cpu_count()} CPU cores"
        )
        if any(m.startswith("prefect") for m in modes):
            warm_up()
        best: dict[tuple[str, int], Run] = {}
        round_ = 0
        for attempt in range(args.repeat):  # every configuration once per pass, so noise hits all alike
            for mode in modes:
                for workers in counts:
                    round_ += 1
                    with dask_cluster(workers) if mode == "prefect dask" else nullcontext(None) as address:
                        work = with_prefect("dask", address) if address else runners[mode]
                        started = time.perf_counter()
                        done = work(urls, args.phase, workers, round_)
                    run = Run(mode, workers, done, time.perf_counter() - started)
                    print(
                        f"  pass {attempt + 1}: {mode:<16} {workers} workers: {done} tasks in {run.seconds:6.1f} s",
                        flush=True,
                    )
                    if (mode, workers) not in best or run.per_minute > best[(mode, workers)].per_minute:
                        best[(mode, workers)] = run
        runs = [best[(mode, workers)] for mode in modes for workers in counts]
    report(runs)


def report(runs: list[Run]) -> None:
    print()
    print(f"{'':<16} {'workers':>7} {'tasks/min':>10} {'vs 1 worker':>12} {'vs plain':>9}")
    first = {r.mode: r for r in runs if r.workers == min(x.workers for x in runs if x.mode == r.mode)}
    baseline = {r.workers: r for r in runs if r.mode == "plain"}
    for r in runs:
        versus_plain = (
            f"{r.per_minute / baseline[r.workers].per_minute:8.2f}x" if r.workers in baseline else f"{'-':>9}"
        )
        scaling = r.per_minute / first[r.mode].per_minute
        print(f"{r.mode:<16} {r.workers:>7} {r.per_minute:>10.1f} {scaling:>11.2f}x {versus_plain}")


if __name__ == "__main__":
    main()
