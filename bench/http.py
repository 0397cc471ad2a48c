"""HTTP-transport benchmark: BOSH long polling and WebSocket messaging, jaybird beside Prosody, one table.

    .venv/bin/python bench/http.py                  # both servers, full sizes; writes bench/results/http.json
    .venv/bin/python bench/http.py --quick          # a smoke run; writes nothing

(a) BOSH: N sessions (steps of `bosh_steps`, added to one another) logged in over BOSH, each holding one long
poll; server RSS and CPU while they idle, KB per session, and the delay of a message sent by a TCP client to a
long-polling session (p50/p99, at a fixed rate round-robin over all sessions).
(b) WebSocket: pairs of clients sending to each other as fast as messages are delivered, `window` in flight each
way; delivered messages/s and server CPU.
Each server runs on core 0 and this process (the generator) on core 1; CPU figures are per cent of one core.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file would shadow the standard
# library's `http` (which aiohttp imports): put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import aiohttp  # noqa: E402

from bench import httpgen, loadgen  # noqa: E402
from bench.http_servers import BOSH_PATH, FACTORIES, WEBSOCKET_PATH, HTTPBenchServer  # noqa: E402
from bench.loadgen import LoginOptions, ProcessMeter, Progress  # noqa: E402
from bench.servers import (  # noqa: E402
    DOMAIN,
    PASSWORD,
    SERVER_CORE,
    ServerUnavailable,
    check_pinned,
    prepare_generator,
)

RESULTS = _HERE / "results" / "http.json"
SCENARIO_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Sizes:
    bosh_steps: tuple[int, ...] = (100, 500, 1000)
    bosh_wait: int = 60
    login_concurrency: int = 32
    idle: float = 5.0  # seconds of idle polling measured at each step
    latency_rate: float = 100.0
    latency_duration: float = 10.0
    ws_pairs: int = 50
    window: int = 16
    warmup: float = 2.0
    duration: float = 10.0
    settle: float = 2.0

    @property
    def accounts(self) -> int:
        return max(max(self.bosh_steps), 2 * self.ws_pairs)


QUICK = Sizes(bosh_steps=(4,), idle=0.3, latency_rate=40.0, latency_duration=0.5, ws_pairs=2, window=4,
              warmup=0.2, duration=0.5, settle=0.2)  # fmt: skip


class Run:
    def __init__(self, server: HTTPBenchServer, sizes: Sizes, progress: Progress) -> None:
        self.server, self.sizes, self.progress = server, sizes, progress
        self.meter = ProcessMeter(server.pid)
        self.results: dict[str, float] = {}
        base = f"127.0.0.1:{server.http_port}"
        self.bosh_url, self.ws_url = f"http://{base}{BOSH_PATH}", f"ws://{base}{WEBSOCKET_PATH}"

    def record(self, key: str, value: float) -> None:
        self.results[key] = round(value, 3)

    async def bosh(self) -> None:
        s, name = self.sizes, self.server.name
        await asyncio.sleep(s.settle)
        rss0 = self.meter.rss_kb()
        self.record("a BOSH RSS MB at 0", rss0 / 1024)
        sender = await loadgen.login(self.server.target, "sender", PASSWORD, LoginOptions(presence=False))
        stamps = httpgen.Stamps()
        timeout = aiohttp.ClientTimeout(total=s.bosh_wait + 30)
        http = aiohttp.ClientSession(connector=httpgen.bosh_connector(max(s.bosh_steps)), timeout=timeout)
        sessions: list[httpgen.BoshSession] = []
        pollers: list[asyncio.Task[None]] = []
        try:
            for n in s.bosh_steps:
                pool = [(f"u{i}", PASSWORD) for i in range(len(sessions), n)]
                began = time.perf_counter()
                new = await httpgen.bosh_login_many(http, self.bosh_url, DOMAIN, pool, wait=s.bosh_wait,
                                                    concurrency=s.login_concurrency)  # fmt: skip
                self.progress.step(f"  {name} a: {n} BOSH sessions ({len(new) / (time.perf_counter() - began):,.0f}"
                                   " logins/s)")  # fmt: skip
                sessions += new
                pollers += [asyncio.create_task(b.poll_forever(stamps.on_data)) for b in new]
                await asyncio.sleep(s.settle)
                key = f"a BOSH n={n}"
                cpu0, wall0 = self.meter.cpu_seconds(), time.perf_counter()
                await asyncio.sleep(s.idle)
                idle_cpu = 100 * (self.meter.cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
                rss = self.meter.rss_kb()
                self.record(f"{key} idle server CPU %", idle_cpu)
                self.record(f"{key} RSS MB", rss / 1024)
                self.record(f"{key} KB/session", (rss - rss0) / n)
                stamps.samples.clear()
                stamps.active = True
                own0, cpu0, wall0 = loadgen.own_cpu_seconds(), self.meter.cpu_seconds(), time.perf_counter()
                sent = await httpgen.paced(sender.writer.write, [b.jid for b in sessions], rate=s.latency_rate,
                                           duration=s.latency_duration)  # fmt: skip
                deadline = time.perf_counter() + 5
                while len(stamps.samples) < sent and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
                wall = time.perf_counter() - wall0
                stamps.active = False
                if any(p.done() for p in pollers):
                    failed = next(p for p in pollers if p.done())
                    raise RuntimeError(f"a long poll ended: {failed.exception()!r}")
                latency = httpgen.percentiles(stamps.samples, sent)
                self.record(f"{key} delivery p50 ms", latency.p50_ms)
                self.record(f"{key} delivery p99 ms", latency.p99_ms)
                self.record(f"{key} delivery server CPU %", 100 * (self.meter.cpu_seconds() - cpu0) / wall)
                self.record(f"{key} delivery generator CPU %", 100 * (loadgen.own_cpu_seconds() - own0) / wall)
                self.progress.step(
                    f"  {name} a n={n}: idle CPU {idle_cpu:.1f} %, {(rss - rss0) / n:,.1f} KB/session, "
                    f"delivery p50 {latency.p50_ms:.2f} ms p99 {latency.p99_ms:.2f} ms ({latency.samples}/{sent})"
                )
        finally:
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            await http.close()
            sender.close()
        await asyncio.sleep(s.settle)

    async def websocket(self) -> None:
        s = self.sizes
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            semaphore = asyncio.Semaphore(s.login_concurrency)

            async def one(user: str) -> httpgen.WsClient:
                async with semaphore:
                    return await httpgen.ws_login(http, self.ws_url, DOMAIN, user, PASSWORD)

            clients = list(await asyncio.gather(*(one(f"u{i}") for i in range(2 * s.ws_pairs))))
            pairs = [(clients[i], clients[i + 1]) for i in range(0, len(clients), 2)]
            window: dict[str, float] = {}

            def sample() -> None:
                window.setdefault("server0", self.meter.cpu_seconds())
                window.setdefault("own0", loadgen.own_cpu_seconds())
                window["server1"], window["own1"] = self.meter.cpu_seconds(), loadgen.own_cpu_seconds()

            result = await httpgen.ws_throughput(pairs, window=s.window, warmup=s.warmup, duration=s.duration,
                                                 sample=sample)  # fmt: skip
            key = f"b WebSocket {s.ws_pairs} pairs"
            self.record(f"{key} msg/s", result.delivered_per_s)
            self.record(f"{key} server CPU %", 100 * (window["server1"] - window["server0"]) / result.seconds)
            self.record(f"{key} generator CPU %", 100 * (window["own1"] - window["own0"]) / result.seconds)
            self.record(f"{key} server RSS MB", self.meter.rss_kb() / 1024)
            self.progress.step(f"  {self.server.name} b: {result.delivered_per_s:,.0f} msg/s over WebSocket")
            await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
        finally:
            await http.close()


async def run_server(server: HTTPBenchServer, scenarios: str, sizes: Sizes, progress: Progress) -> dict[str, float]:
    run = Run(server, sizes, progress)
    steps = {"a": run.bosh, "b": run.websocket}
    for letter in scenarios:
        progress.step(f"{server.name}: scenario {letter}")
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                await steps[letter]()
        except (TimeoutError, httpgen.LoginFailed, loadgen.LoginFailed, OSError, RuntimeError,
                aiohttp.ClientError) as exc:  # fmt: skip
            progress.step(f"{server.name}: scenario {letter} failed: {type(exc).__name__}: {exc}")
            run.record(f"{letter} failed", 1)
    return run.results


def table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    keys: list[str] = []
    for figures in results.values():
        keys += [k for k in figures if k not in keys]
    ratio = "jaybird" in results and "prosody" in results
    header = ["figure", *names, *(["jaybird/prosody"] if ratio else [])]
    rows = [header, ["---"] * len(header)]
    for key in keys:
        row = [key, *(_fmt(results[n].get(key)) for n in names)]
        if ratio:
            mine, theirs = results["jaybird"].get(key), results["prosody"].get(key)
            row.append(f"{mine / theirs:.2f}x" if mine is not None and theirs else "-")
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    from bench.run import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="prosody,jaybird")
    parser.add_argument("--scenarios", default="a,b")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run; writes no results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.servers.split(",") if n]
    scenarios = "".join(s for s in args.scenarios.split(",") if s)
    unknown = [n for n in names if n not in FACTORIES]
    if unknown or any(s not in "ab" for s in scenarios):
        parser.error(f"unknown server or scenario: {unknown or scenarios}")
    sizes = QUICK if args.quick else Sizes()
    progress = Progress()
    prepare_generator(progress)
    results: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    loop = loadgen.new_event_loop()
    try:
        for name in names:
            with tempfile.TemporaryDirectory(prefix=f"bench-http-{name}-") as workdir:
                try:
                    server = FACTORIES[name](Path(workdir))
                    progress.step(f"{name}: starting")
                    server.start()
                except (ServerUnavailable, RuntimeError) as exc:
                    skipped[name] = str(exc).splitlines()[0]
                    progress.step(f"{name}: skipped: {skipped[name]}")
                    continue
                try:
                    check_pinned(name, server.pid, SERVER_CORE)
                    server.ensure_accounts(["sender", *(f"u{i}" for i in range(sizes.accounts))])
                    progress.step(f"{name}: {sizes.accounts + 1} accounts ready")
                    results[name] = loop.run_until_complete(run_server(server, scenarios, sizes, progress))
                finally:
                    server.stop()
                    progress.step(f"{name}: stopped")
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
    return 0 if results and not any("a failed" in r or "b failed" in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
