#!/usr/bin/env python3
"""Edge-cache simulation for docs/SCALE.md: many CDN edges, each serving viewers of one room that
pull what the viewer page pulls (CDN danmaku: batch file n until it exists, index on misses;
HLS: live playlist every target duration, each new segment once listed), through a cache with
the Cache-Control of src/storage/mod.rs and the 404 caching / request collapsing of deploy/nginx.conf.
Reports origin requests per edge per second with and without collapsing (proxy_cache_lock), and
the ratio of viewer requests to origin requests. A model, not a load test: origin latency and
viewer behaviour are inputs (see --help); nothing here touches a server.

python3 scripts/cdn_sim.py --edges 20 --viewers-per-edge 2000 --seconds 60
"""
import argparse
import heapq
import random

TTL = {"index": 1.0, "playlist": 1.0, "batch": 86400.0, "segment": 31536000.0, "404": 1.0}


def kind_of(key):
    return key.split(":")[0]


class Edge:
    def __init__(self, origin_ms, collapse):
        self.cache = {}  # key -> (stored at, expires, exists)
        self.inflight = {}  # key -> finish time
        self.origin_ms = origin_ms / 1000.0
        self.collapse = collapse
        self.origin_requests = 0
        self.viewer_requests = 0

    def get(self, now, key, exists_at):
        """Returns (time the viewer has its answer, whether the object exists then)."""
        self.viewer_requests += 1
        hit = self.cache.get(key)
        if hit and hit[0] <= now < hit[1]:
            return now, hit[2]
        if self.collapse and key in self.inflight and self.inflight[key] > now:
            return self.inflight[key], hit[2]  # waits for the fetch under way
        self.origin_requests += 1
        done = now + self.origin_ms
        exists = exists_at(key) <= now + self.origin_ms / 2
        ttl = TTL[kind_of(key)] if exists else TTL["404"]
        self.cache[key] = (done, done + ttl, exists)
        self.inflight[key] = done
        return done, exists


def simulate(a, collapse):
    rng = random.Random(a.seed)
    period, seg = a.period_ms / 1000.0, a.segment_s

    def exists_at(key):
        kind, _, n = key.partition(":")
        if kind == "batch":  # file n stored store_ms after period n closes
            return (int(n) + 1) * period + a.store_ms / 1000.0
        if kind == "segment":
            return (int(n) + 1) * seg + a.store_ms / 1000.0
        return 0.0  # index, playlist: always there

    edges = [Edge(a.origin_ms, collapse) for _ in range(a.edges)]
    events = []  # (time, edge, viewer kind, state)
    for e in range(a.edges):
        for _ in range(a.viewers_per_edge):
            start = rng.uniform(0, 2.0)
            if rng.random() < a.cdn_danmaku_share:
                heapq.heappush(events, (start, e, "dm", int(start / period)))
            heapq.heappush(events, (start + rng.uniform(0, seg), e, "hls", int(start / seg)))
    end = a.seconds
    while events:
        t, e, who, n = heapq.heappop(events)
        if t > end:
            continue
        edge = edges[e]
        if who == "dm":
            done, ok = edge.get(t, f"batch:{n}", exists_at)
            if ok:
                heapq.heappush(events, (done, e, "dm", n + 1))  # maybe behind: next at once
            else:
                heapq.heappush(events, (done + period, e, "dm", n))
        else:
            done, _ = edge.get(t, "playlist:live", exists_at)
            newest = int((done - a.store_ms / 1000.0) / seg) - 1
            for s in range(max(n, newest - 2), newest + 1):
                done, _ = edge.get(done, f"segment:{s}", exists_at)
            heapq.heappush(events, (done + seg, e, "hls", max(n, newest + 1)))
    viewer = sum(x.viewer_requests for x in edges)
    origin = sum(x.origin_requests for x in edges)
    return viewer / a.seconds, origin / a.seconds, origin / a.seconds / a.edges


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--edges", type=int, default=20)
    p.add_argument("--viewers-per-edge", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--period-ms", type=float, default=1000, help="cdn.period_ms")
    p.add_argument("--segment-s", type=float, default=2.0, help="hls.target_segment_s")
    p.add_argument("--origin-ms", type=float, default=56, help="origin fetch time (S3 put p50, measured)")
    p.add_argument("--store-ms", type=float, default=56, help="period end -> object stored (measured p50)")
    p.add_argument("--cdn-danmaku-share", type=float, default=1.0, help="viewers reading danmaku from the CDN")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    print(f"edges {a.edges}, viewers/edge {a.viewers_per_edge}, {a.seconds:.0f} s, period {a.period_ms:.0f} ms, segment {a.segment_s} s, origin {a.origin_ms:.0f} ms")
    print("| collapsing | viewer req/s (all edges) | origin req/s (all edges) | origin req/s per edge | viewer req per origin req |")
    print("|---|---|---|---|---|")
    for collapse in (False, True):
        v, o, per = simulate(a, collapse)
        print(f"| {'on' if collapse else 'off'} | {v:.0f} | {o:.0f} | {per:.2f} | {v / o:.0f} |")


if __name__ == "__main__":
    main()
