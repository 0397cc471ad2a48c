"""Server benchmark: the same scenarios against Prosody, ejabberd and jaybird, one table of figures and ratios.

    .venv/bin/python bench/run.py                         # every server, every scenario, full sizes
    .venv/bin/python bench/run.py --servers prosody --scenarios a,d --quick

Scenarios: (a) message throughput, (b) logins/s, (c) memory per idle client, (d) latency at a fixed rate,
(e) presence fan-out. Each server is pinned to core 0 and this process (the load generator) to core 1; CPU
figures are per cent of one core. Full runs write bench/results/servers.json; --quick runs write nothing.

With (b), jaybird's STARTTLS logins are also measured *paired* with each other server: both run on core 0 at
the same time under the same login load, so a slow minute of a shared machine weighs on both alike (the rows
"b paired with ..."). The server CPU per login of such a pair is the steadiest comparison this gives.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script, bench/ itself comes first on sys.path, where bench/http.py would shadow the standard
    # library's `http`: the repository root takes its place.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from bench import loadgen
from bench.loadgen import Connection, LoginOptions, ProcessMeter, Progress
from bench.servers import (
    FACTORIES,
    PASSWORD,
    BenchServer,
    ServerUnavailable,
    check_pinned,
    prepare_generator,
)

RESULTS = Path(__file__).resolve().parent / "results" / "servers.json"
SCENARIOS = "abcde"
SCENARIO_TIMEOUT = 240.0
QUIET_LIMIT = 120.0


@dataclass(frozen=True, slots=True)
class Sizes:
    throughput_users: tuple[int, ...] = (100, 200)
    window: int = 32
    warmup: float = 2.0
    duration: float = 10.0
    login_concurrency: int = 16
    idle_steps: tuple[int, ...] = (1000, 5000, 10000)
    latency_rate: float = 1000.0
    latency_pairs: int = 10
    fanout_contacts: int = 500
    settle: float = 2.0  # pause before reading RSS, and between steps
    idle: float = 15.0  # how long the idle clients of (c) stay silent before RSS is read

    @property
    def accounts(self) -> int:
        return max(*self.throughput_users, *self.idle_steps, 2 * self.latency_pairs, 200)


QUICK = Sizes(throughput_users=(10,), window=8, warmup=0.3, duration=1.0, login_concurrency=4, idle_steps=(30,),
              latency_rate=200.0, latency_pairs=2, fanout_contacts=10, settle=0.2, idle=0.2)  # fmt: skip


def users(n: int, prefix: str = "u") -> list[tuple[str, str]]:
    return [(f"{prefix}{i}", PASSWORD) for i in range(n)]


class Run:
    """One server's scenarios; every figure goes into `results` under a readable key."""

    def __init__(self, server: BenchServer, sizes: Sizes, progress: Progress) -> None:
        self.server, self.sizes, self.progress = server, sizes, progress
        self.meter = ProcessMeter(server.pid)
        self.results: dict[str, float] = {}

    async def quiet(self, *, below: float = 0.05, limit: float = QUIET_LIMIT) -> float:
        """Wait (at most ``limit`` s) until the server uses less than ``below`` of its core over half a second,
        so work left by the previous step (closing 10,000 sessions, say) is not measured in the next one.
        Returns the seconds waited."""
        began = time.monotonic()
        while time.monotonic() - began < limit:
            cpu0 = self.meter.cpu_seconds()
            await asyncio.sleep(0.5)
            if self.meter.cpu_seconds() - cpu0 < below * 0.5:
                break
        return time.monotonic() - began

    def record(self, key: str, value: float) -> None:
        self.results[key] = round(value, 3)

    async def measured(self, key: str, body: Callable[[], Awaitable[float]]) -> None:
        """Runs `body` (which returns its measured seconds) and records both processes' CPU use over it."""
        server0, own0, wall0 = self.meter.cpu_seconds(), loadgen.own_cpu_seconds(), time.perf_counter()
        await body()
        wall = time.perf_counter() - wall0
        self.record(f"{key} server CPU %", 100 * (self.meter.cpu_seconds() - server0) / wall)
        self.record(f"{key} generator CPU %", 100 * (loadgen.own_cpu_seconds() - own0) / wall)
        self.record(f"{key} server RSS MB", self.meter.rss_kb() / 1024)

    async def throughput(self) -> None:
        target, s = self.server.target, self.sizes
        for n in s.throughput_users:
            connections = await loadgen.login_many(target, users(n), LoginOptions())
            pairs = [(connections[i], connections[i + 1]) for i in range(0, n - 1, 2)]
            window: dict[str, float] = {}

            def sample(window: dict[str, float] = window) -> None:
                window.setdefault("server0", self.meter.cpu_seconds())
                window.setdefault("own0", loadgen.own_cpu_seconds())
                window["server1"], window["own1"] = self.meter.cpu_seconds(), loadgen.own_cpu_seconds()

            result = await loadgen.throughput(pairs, window=s.window, warmup=s.warmup, duration=s.duration,
                                              sample=sample)  # fmt: skip
            key = f"a throughput N={n}"
            self.record(f"{key} msg/s", result.delivered_per_s)
            self.record(f"{key} msg/s spread %", result.parts.spread_pct)
            self.record(f"{key} server CPU %", 100 * (window["server1"] - window["server0"]) / result.seconds)
            self.record(f"{key} generator CPU %", 100 * (window["own1"] - window["own0"]) / result.seconds)
            self.record(f"{key} server RSS MB", self.meter.rss_kb() / 1024)
            loadgen.close_all(connections)
            self.progress.step(f"  {self.server.name} a N={n}: {result.delivered_per_s:,.0f} msg/s")
            await asyncio.sleep(self.sizes.settle / 4)

    async def logins(self) -> None:
        pool = users(200)
        # Every account logged in once before the clock starts: the generator's SCRAM keys are then cached, as a
        # real client caches its own, whichever salts the server chose.
        loadgen.close_all(await loadgen.login_many(self.server.target, pool, LoginOptions()))
        for label, options in (
            ("STARTTLS+SCRAM-SHA-1", LoginOptions(tls=True, mechanism="SCRAM-SHA-1")),
            # Without TLS: with SCRAM, which every server offers over plain TCP on loopback here, and with PLAIN,
            # which jaybird never offers without TLS (that row is "refused" for it).
            ("plain+SCRAM-SHA-1", LoginOptions(tls=False, mechanism="SCRAM-SHA-1")),
            ("plain+PLAIN", LoginOptions(tls=False, mechanism="PLAIN")),
        ):
            key = f"b logins {label}"
            box: list[loadgen.Logins] = []

            async def body(options: LoginOptions = options, box: list[loadgen.Logins] = box) -> float:
                box.append(await loadgen.logins(self.server.target, pool, options,
                                                concurrency=self.sizes.login_concurrency,
                                                duration=self.sizes.duration))  # fmt: skip
                return box[0].seconds

            try:
                await self.measured(key, body)
            except loadgen.LoginFailed as exc:
                # A server may refuse a variant by policy (jaybird never offers PLAIN without TLS): the other
                # variant is still measured.
                self.progress.step(f"  {self.server.name} b {label}: not measured: {exc}")
                self.record(f"{key} refused", 1)
                continue
            self.record(f"{key} /s", box[0].per_s)
            self.record(f"{key} /s spread %", box[0].parts.spread_pct)
            self.progress.step(f"  {self.server.name} b {label}: {box[0].per_s:,.0f} logins/s")
            await asyncio.sleep(self.sizes.settle / 2)

    async def idle(self) -> None:
        await asyncio.sleep(self.sizes.settle / 2)
        rss0 = self.meter.rss_kb()
        self.record("c idle RSS MB at 0", rss0 / 1024)
        held: list[Connection] = []
        pool = users(max(self.sizes.idle_steps))
        for n in self.sizes.idle_steps:
            held += await loadgen.login_many(self.server.target, pool[len(held) : n], LoginOptions(),
                                             concurrency=64)  # fmt: skip
            await loadgen.drain(held, quiet=0.2)
            await asyncio.sleep(self.sizes.idle)
            rss = self.meter.rss_kb()
            self.record(f"c idle n={n} RSS MB", rss / 1024)
            self.record(f"c idle n={n} KB/conn", (rss - rss0) / n)
            self.progress.step(f"  {self.server.name} c n={n}: {(rss - rss0) / n:,.1f} KB/conn")
        loadgen.close_all(held)
        await asyncio.sleep(self.sizes.settle)

    async def latency(self) -> None:
        s = self.sizes
        connections = await loadgen.login_many(self.server.target, users(2 * s.latency_pairs), LoginOptions())
        pairs = [(connections[i], connections[i + 1]) for i in range(0, len(connections), 2)]
        box: list[loadgen.Latency] = []

        async def body() -> float:
            box.append(await loadgen.latency(pairs, rate=s.latency_rate, duration=s.duration))
            return s.duration

        key = f"d latency at {s.latency_rate:.0f} msg/s"
        await self.measured(key, body)
        self.record(f"{key} p50 ms", box[0].p50_ms)
        self.record(f"{key} p99 ms", box[0].p99_ms)
        loadgen.close_all(connections)
        self.progress.step(f"  {self.server.name} d: p50 {box[0].p50_ms:.2f} ms, p99 {box[0].p99_ms:.2f} ms")

    async def fanout(self) -> None:
        contacts = users(self.sizes.fanout_contacts, prefix="fan")
        online = await loadgen.login_many(self.server.target, contacts, LoginOptions(), concurrency=32)
        await loadgen.drain(online)
        hub = await loadgen.login(self.server.target, "fanhub", PASSWORD, LoginOptions(presence=False))
        box: list[float] = []

        async def available() -> float:
            waiting = asyncio.ensure_future(loadgen.wait_for_marker(online, b"fanhub@", timeout=60))
            hub.writer.write(b"<presence/>")
            box.append(await waiting)
            return box[-1]

        async def away() -> float:
            waiting = asyncio.ensure_future(loadgen.wait_for_marker(online, b"<show>away</show>", timeout=60))
            hub.writer.write(b"<presence><show>away</show></presence>")
            box.append(await waiting)
            return box[-1]

        n = self.sizes.fanout_contacts
        await self.measured(f"e fan-out {n} online", available)
        await loadgen.drain([*online, hub])
        await self.measured(f"e fan-out {n} status change", away)
        self.record(f"e fan-out {n} online ms", 1000 * box[0])
        self.record(f"e fan-out {n} status change ms", 1000 * box[1])
        loadgen.close_all([*online, hub])
        self.progress.step(f"  {self.server.name} e: online {1000 * box[0]:.1f} ms, away {1000 * box[1]:.1f} ms")


async def run_server(server: BenchServer, scenarios: str, sizes: Sizes, progress: Progress) -> dict[str, float]:
    run = Run(server, sizes, progress)
    steps = {"a": run.throughput, "b": run.logins, "c": run.idle, "d": run.latency, "e": run.fanout}
    for letter in scenarios:
        waited = await run.quiet()
        progress.step(
            f"{server.name}: scenario {letter}" + (f" (server busy {waited:.1f} s before)" if waited > 1 else "")
        )
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                await steps[letter]()
        except (TimeoutError, loadgen.LoginFailed, OSError, RuntimeError) as exc:
            progress.step(f"{server.name}: scenario {letter} failed: {type(exc).__name__}: {exc}")
            run.record(f"{letter} failed", 1)
    return run.results


def prepare(server: BenchServer, scenarios: str, sizes: Sizes, progress: Progress) -> str:
    """Creates the accounts (and rosters) the scenarios need; returns the scenarios the server can run."""
    needed = [u for u, _ in users(sizes.accounts)]
    fans = [u for u, _ in users(sizes.fanout_contacts, prefix="fan")]
    if "e" in scenarios:
        needed += ["fanhub", *fans]
    server.ensure_accounts(needed)
    progress.step(f"{server.name}: {len(needed)} accounts ready")
    if "e" in scenarios:
        try:
            server.make_mutual("fanhub", fans)
        except ServerUnavailable as exc:
            progress.step(f"{server.name}: scenario e skipped: {exc}")
            scenarios = scenarios.replace("e", "")
    return scenarios


async def _logins_at_once(servers: Sequence[BenchServer], options: LoginOptions,
                          sizes: Sizes) -> list[tuple[loadgen.Logins, float]]:  # fmt: skip
    """The same login load against every server at once: each one's logins and CPU seconds meanwhile."""
    for server in servers:
        loadgen.close_all(await loadgen.login_many(server.target, users(200), options))
    await asyncio.sleep(sizes.settle)
    meters = [ProcessMeter(server.pid) for server in servers]
    cpu0 = [meter.cpu_seconds() for meter in meters]
    runs = await asyncio.gather(*(
        loadgen.logins(server.target, users(200), options, concurrency=sizes.login_concurrency,
                       duration=sizes.duration)
        for server in servers
    ))  # fmt: skip
    return [(run, meter.cpu_seconds() - c0) for run, meter, c0 in zip(runs, meters, cpu0, strict=True)]


def paired_logins(names: Sequence[str], sizes: Sizes, progress: Progress,
                  loop: asyncio.AbstractEventLoop) -> dict[str, dict[str, float]]:  # fmt: skip
    """jaybird and each other server started together on the server core, STARTTLS logins against both at
    once; per server the logins/s and its CPU per login. Returns figures by server name."""
    found: dict[str, dict[str, float]] = {}
    options = LoginOptions(tls=True, mechanism="SCRAM-SHA-1")
    for other in (n for n in names if n in ("prosody", "ejabberd")):
        if "jaybird" not in names:
            break
        key = f"b paired with {other}: STARTTLS+SCRAM-SHA-1"
        with tempfile.TemporaryDirectory(prefix="bench-pair-") as workdir:
            pair: list[tuple[str, BenchServer]] = []
            try:
                for name in ("jaybird", other):
                    server = FACTORIES[name](Path(workdir) / name)
                    server.start()
                    pair.append((name, server))
                    check_pinned(name, server.pid, server.core)
                    server.ensure_accounts([u for u, _ in users(200)])
                progress.step(f"paired: jaybird and {other} on one core, STARTTLS logins against both")
                measured = loop.run_until_complete(_logins_at_once([s for _n, s in pair], options, sizes))
                for (name, _server), (run, cpu) in zip(pair, measured, strict=True):
                    found.setdefault(name, {})[f"{key} /s"] = round(run.per_s, 3)
                    per_login = 1000 * cpu / max(run.count, 1)
                    found[name][f"{key} server ms CPU/login"] = round(per_login, 3)
                    progress.step(f"  paired {name}: {run.per_s:,.0f} logins/s, {per_login:.2f} ms CPU per login")
            except (ServerUnavailable, RuntimeError, TimeoutError, OSError, loadgen.LoginFailed) as exc:
                progress.step(f"paired with {other}: not measured: {type(exc).__name__}: {exc}")
            finally:
                for _name, server in pair:
                    server.stop()
    return found


def table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    keys: list[str] = []
    for figures in results.values():
        keys += [k for k in figures if k not in keys]
    ratios: list[tuple[str, str]] = [
        (f"jaybird/{other}", other) for other in ("prosody", "ejabberd") if "jaybird" in results and other in results
    ]
    if "jaybird-2w" in results and "jaybird" in results:
        ratios.append(("jaybird-2w/jaybird", "jaybird"))
    header = ["figure", *names, *(label for label, _ in ratios)]
    rows = [header, ["---"] * len(header)]
    for key in keys:
        row = [key, *(_fmt(results[n].get(key)) for n in names)]
        for label, other in ratios:
            mine, theirs = results[label.split("/")[0]].get(key), results.get(other, {}).get(key)
            row.append(f"{mine / theirs:.2f}x" if mine is not None and theirs else "-")
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def machine() -> dict[str, str | int]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count() or 0, "python": platform.python_version(),
            "kernel": platform.release()}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="prosody,ejabberd,jaybird,jaybird-2w",
                        help=f"comma-separated, of: {', '.join(FACTORIES)} (default: %(default)s)")  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run; writes no results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.servers.split(",") if n]
    unknown = [n for n in names if n not in FACTORIES]
    scenarios = "".join(s for s in args.scenarios.split(",") if s)
    if unknown or any(s not in SCENARIOS for s in scenarios):
        parser.error(f"unknown server or scenario: {unknown or scenarios}")
    sizes = QUICK if args.quick else Sizes()
    progress = Progress()
    prepare_generator(progress)
    results: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    loop = loadgen.new_event_loop()
    try:
        for name in names:
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
                try:
                    server: BenchServer = FACTORIES[name](Path(workdir))
                    progress.step(f"{name}: starting")
                    server.start()
                except (ServerUnavailable, RuntimeError) as exc:
                    skipped[name] = str(exc).splitlines()[0]
                    progress.step(f"{name}: skipped: {skipped[name]}")
                    continue
                try:
                    check_pinned(name, server.pid, server.core)
                    runnable = prepare(server, scenarios, sizes, progress)
                    results[name] = loop.run_until_complete(run_server(server, runnable, sizes, progress))
                except ServerUnavailable as exc:
                    skipped[name] = str(exc).splitlines()[0]
                    progress.step(f"{name}: skipped: {skipped[name]}")
                finally:
                    server.stop()
                    progress.step(f"{name}: stopped")
        if "b" in scenarios:
            for name, figures in paired_logins(names, sizes, progress, loop).items():
                results.setdefault(name, {}).update(figures)
    finally:
        loop.close()
    print()
    print(table(results))
    for name, reason in skipped.items():
        print(f"\n{name} skipped: {reason}")
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine(), "sizes": dataclasses.asdict(sizes), "results": results, "skipped": skipped}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwritten to {args.out}")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
