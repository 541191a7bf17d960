#!/usr/bin/env python3
"""The peer for the delay-queue benchmark: arq (PyPI) on the same Redis server.

The same scenario as `reachd bench delay-queue`: N jobs deferred to one common
due time, then fired by W worker processes (as reachd uses two schedulers).
Each job records its lateness (fire time - due time). Settings chosen to give
arq its best chance: max_jobs=1000 per worker (default 10), poll_delay=0.05 s
(reachd's idle poll; default 0.5 s), keep_result=0, burst mode.

Prints one line: "arq: N jobs, all fired X s after the due time: R jobs/s
lateness p50 A ms, p99 B ms, max C ms" (the same shape reachd prints).
"""
import argparse, asyncio, json, multiprocessing, os, sys, tempfile, time
from datetime import datetime, timezone

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

QUEUE = "reach-bench:arq"


async def fire(ctx, due):
    ctx["lateness"].append(time.time() - due)


def worker_main(port, out_path):
    async def startup(ctx):
        ctx["lateness"] = []

    async def shutdown(ctx):
        with open(out_path, "w") as f:
            json.dump({"lateness": ctx["lateness"], "last": time.time()}, f)

    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = Worker(functions=[fire], queue_name=QUEUE, redis_settings=RedisSettings(port=port), burst=True,
                    max_jobs=1000, poll_delay=0.05, keep_result=0, on_startup=startup, on_shutdown=shutdown,
                    handle_signals=False, log_results=False)
    worker.run()


async def enqueue(port, jobs, due, queue=QUEUE, prefix="j"):
    pool = await create_pool(RedisSettings(port=port))
    when = datetime.fromtimestamp(due, tz=timezone.utc)
    for start in range(0, jobs, 1000):
        await asyncio.gather(*(pool.enqueue_job("fire", due, _job_id=f"{prefix}{i}", _queue_name=queue, _defer_until=when)
                               for i in range(start, min(jobs, start + 1000))))
    await pool.aclose()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    # Pilot: how fast arq enqueues here, so every job can share one due time
    # that is still in the future when the last one is queued.
    t0 = time.time()
    asyncio.run(enqueue(args.port, 2000, time.time() + 3600, queue=QUEUE + ":pilot", prefix="pilot-"))
    pilot_rate = 2000 / (time.time() - t0)
    import redis
    r = redis.Redis(port=args.port)
    r.delete(QUEUE + ":pilot", *r.keys("arq:job:pilot-*"))
    due = time.time() + args.jobs / pilot_rate * 1.5 + 3
    t1 = time.time()
    asyncio.run(enqueue(args.port, args.jobs, due))
    enqueue_seconds = time.time() - t1
    if time.time() >= due:
        sys.exit(f"arq: enqueueing took {enqueue_seconds:.1f} s, past the due time; rerun")
    r.close()
    tmp = tempfile.mkdtemp(prefix="arq-peer-")
    outs = [os.path.join(tmp, f"w{i}.json") for i in range(args.workers)]
    procs = [multiprocessing.Process(target=worker_main, args=(args.port, out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lateness, last = [], 0.0
    for out in outs:
        with open(out) as f:
            data = json.load(f)
        lateness += data["lateness"]
        last = max(last, data["last"])
    lateness.sort()
    fired = len(lateness)
    all_fired = lateness[-1] if lateness else float("nan")

    def ms(q):
        return lateness[min(fired - 1, int(fired * q))] * 1000

    print(f"arq: {fired} of {args.jobs} jobs, enqueued in {enqueue_seconds:.2f} s, all fired {all_fired:.2f} s after the due time: "
          f"{fired / max(all_fired, 1e-9):.0f} jobs/s\n  lateness p50 {ms(0.5):.0f} ms, p99 {ms(0.99):.0f} ms, max {lateness[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
