#!/usr/bin/env python3
"""Ingest benchmark: N streams of 720p30 ~3 Mbit/s FLV pushed for D seconds into barrage and, in
the same run, into nginx with libnginx-mod-rtmp producing HLS (the baseline). Reports server
CPU-seconds and peak RSS of each, their ratio, and barrage's delay from a segment's closing
keyframe to the playlist that lists it (its own histogram, barrage_hls_playlist_delay_seconds).

Usage: scripts/bench_ingest.py [--streams 1,8] [--seconds 40] [--part-ms 0] [--rounds 1]
                               [--fresh-fs [--mkfs-options "-O ^has_journal"]] [--json]
Needs: ffmpeg, nginx + libnginx-mod-rtmp (apt-get install -y ffmpeg nginx libnginx-mod-rtmp),
and a release build (cargo build --release; the script builds it if missing).
Everything listens on 127.0.0.1 only; the run stops by itself.

--fresh-fs (root only: mkfs.ext4 and a loop mount) gives each server run its own new ext4 file
system. Without it both write under /tmp, and the file system's history weighs on whoever runs
after it: on ext4 without a journal every file creation skips the inodes freed in the last
minutes (`recently_deleted`), so a build or an `rm -rf` just before can double a run's CPU.

Both servers must really write HLS: each run counts the segments on disk afterwards and stops
with an error when a server wrote none. (Run as root, nginx's worker is `nobody` by default and
could not create its fragments in our root-owned folder: it only logged "Permission denied", and
before this check the baseline silently did no muxing and no writing at all. The config names
the current user for the worker.)
"""
import argparse, contextlib, json, os, pwd, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def proc_tree(pid):
    """pid and its descendants (nginx master + workers)."""
    out = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(p))
            except OSError:
                pass
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / TICK


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+)", f.read())
                total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def make_source(path, seconds):
    if os.path.exists(path):
        return
    print(f"generating {path} (720p30, 3 Mbit/s, {seconds} s)", flush=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M",
         "-maxrate", "3M", "-bufsize", "6M", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv", path],
        check=True)


def push_all(src, urls, seconds):
    procs = [subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-t", str(seconds), "-i", src,
         "-c", "copy", "-f", "flv", u], stdin=subprocess.DEVNULL) for u in urls]
    return procs


def measure(pids_fn, procs, seconds, label):
    pids = pids_fn()
    cpu0, t0, peak = cpu_seconds(pids), time.time(), 0
    while any(p.poll() is None for p in procs):
        peak = max(peak, rss_kib(pids_fn()))
        el = time.time() - t0
        print(f"\r  {label}: {el:5.1f}/{seconds} s  rss {peak/1024:.1f} MiB", end="", flush=True)
        time.sleep(0.5)
        if el > seconds + 30:
            for p in procs:
                p.kill()
    print()
    failures = sum(1 for p in procs if p.returncode != 0)
    return cpu_seconds(pids_fn()) - cpu0, peak, failures


def count_files(folder, suffix):
    """How many files under `folder` end in `suffix` (the segments a server wrote)."""
    return sum(1 for _, _, names in os.walk(folder) for name in names if name.endswith(suffix))


def require_output(server, segments, streams, log):
    """A server that wrote no segments did not do the work being compared: stop, say why."""
    if segments < streams:
        sys.exit(f"{server} wrote {segments} HLS segments for {streams} streams: the comparison "
                 f"would be void (see {log})")


PART_MS = 0
FRESH_FS = None  # mkfs.ext4 options when each run gets a new file system, else None


@contextlib.contextmanager
def run_dir(work, name):
    """A folder for one server run: under `work`, or a new ext4 file system mounted there."""
    path = os.path.join(work, name)
    os.makedirs(path, exist_ok=True)
    if FRESH_FS is None:
        yield path
        return
    image = path + ".img"
    with open(image, "wb") as f:
        f.truncate(4 << 30)
    subprocess.run(["mkfs.ext4", "-q", "-F", *FRESH_FS.split(), image], check=True)
    subprocess.run(["mount", "-o", "loop", image, path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=False)
        os.remove(image)


def run_barrage(binary, src, n, seconds, work):
    with run_dir(work, f"barrage-{n}") as data:
        return run_barrage_in(binary, src, n, seconds, data)


def run_barrage_in(binary, src, n, seconds, work):
    http, rtmp = free_port(), free_port()
    cfg = os.path.join(work, f"barrage-{n}.toml")
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{work}/barrage-data-{n}"\nlog = "warn"\n')
        f.write(f'[http]\nlisten = "127.0.0.1:{http}"\n[rtmp]\nlisten = "127.0.0.1:{rtmp}"\n')
        f.write('[auth]\nadmin_key = "bench-admin-key-123456"\ntoken_secret = "bench-secret-123456"\n')
        # nginx-rtmp writes no LL-HLS parts: compare like with like unless asked (--part-ms).
        f.write(f'[hls]\npart_ms = {PART_MS}\n')
        for i in range(n):
            f.write(f'[[rooms]]\nid = "bench{i}"\ntitle = "bench {i}"\nstream_key = "key{i}"\n')
    server = subprocess.Popen([binary, "serve", "--config", cfg], stdin=subprocess.DEVNULL)
    try:
        wait_port(rtmp)
        wait_port(http)
        procs = push_all(src, [f"rtmp://127.0.0.1:{rtmp}/live/key{i}" for i in range(n)], seconds)
        cpu, rss, failures = measure(lambda: [server.pid], procs, seconds, f"barrage x{n}")
        time.sleep(1)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
        delay = {}
        for q in ("0.5", "0.99", "1"):
            m = re.search(r'barrage_hls_playlist_delay_seconds\{quantile="%s"\} ([0-9.e+-]+)' % re.escape(q), metrics)
            if m:
                delay[q] = float(m.group(1)) * 1000
        written = count_files(os.path.join(work, f"barrage-data-{n}"), ".m4s")
        require_output("barrage", written, n, "its log above")
        return {"cpu_s": cpu, "rss_kib": rss, "push_failures": failures,
                "delay_ms": delay, "segments": written}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def run_nginx(src, n, seconds, work):
    with run_dir(work, f"nginx-{n}") as prefix:
        return run_nginx_in(src, n, seconds, prefix)


def run_nginx_in(src, n, seconds, prefix):
    rtmp = free_port()
    os.makedirs(os.path.join(prefix, "hls"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    module = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
    # The worker must be able to write into our folder: as root it would otherwise run as nobody.
    worker_user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(f"""load_module {module};
daemon off; master_process on; worker_processes 1; pid {prefix}/nginx.pid;
{worker_user}
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
rtmp {{ server {{ listen 127.0.0.1:{rtmp}; chunk_size 4096;
  application live {{ live on; record off; hls on; hls_path {prefix}/hls;
    hls_fragment 2s; hls_playlist_length 12s; hls_cleanup off; }} }} }}
""")
    server = subprocess.Popen(["nginx", "-p", prefix, "-c", conf], stdin=subprocess.DEVNULL)
    try:
        wait_port(rtmp)
        procs = push_all(src, [f"rtmp://127.0.0.1:{rtmp}/live/key{i}" for i in range(n)], seconds)
        cpu, rss, failures = measure(lambda: proc_tree(server.pid), procs, seconds, f"nginx-rtmp x{n}")
        written = count_files(os.path.join(prefix, "hls"), ".ts")
        require_output("nginx-rtmp", written, n, os.path.join(prefix, "logs", "error.log"))
        return {"cpu_s": cpu, "rss_kib": rss, "push_failures": failures, "segments": written}
    finally:
        server.send_signal(signal.SIGQUIT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="1,8")
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--part-ms", type=int, default=0,
                    help="barrage's hls.part_ms (0: no LL-HLS parts, like nginx-rtmp)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run each pair (barrage, then nginx-rtmp) this many times")
    ap.add_argument("--fresh-fs", action="store_true",
                    help="a new ext4 file system for each server run (root only, see above)")
    ap.add_argument("--mkfs-options", default="",
                    help='mkfs.ext4 options for --fresh-fs (e.g. "-O ^has_journal")')
    args = ap.parse_args()
    global PART_MS, FRESH_FS
    PART_MS = args.part_ms
    if args.fresh_fs:
        if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
            sys.exit("--fresh-fs needs root and mkfs.ext4 (it mounts a loop file system)")
        FRESH_FS = args.mkfs_options
    for tool in ("ffmpeg", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y ffmpeg nginx libnginx-mod-rtmp")
    binary = os.environ.get("BENCH_BARRAGE_BIN") or os.path.join(ROOT, "target/release/barrage")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="barrage-bench-ingest-")
    src = os.path.join(tempfile.gettempdir(), f"barrage-bench-720p30-{args.seconds + 5}s.flv")
    make_source(src, args.seconds + 5)
    rows = []
    for n in [int(x) for x in args.streams.split(",") for _ in range(args.rounds)]:
        b = run_barrage(binary, src, n, args.seconds, work)
        x = run_nginx(src, n, args.seconds, work)
        rows.append({"streams": n, "seconds": args.seconds, "barrage": b, "nginx_rtmp": x,
                     "cpu_ratio": b["cpu_s"] / x["cpu_s"] if x["cpu_s"] else None})
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("\n| streams | barrage CPU s | nginx-rtmp CPU s | CPU ratio | barrage RSS MiB | nginx RSS MiB | playlist delay p50 / p99 / max ms | segments written | failed pushes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, x, d = r["barrage"], r["nginx_rtmp"], r["barrage"]["delay_ms"]
        delay = " / ".join(f"{d[q]:.1f}" if q in d else "-" for q in ("0.5", "0.99", "1"))
        ratio = f"{r['cpu_ratio']:.2f}" if r["cpu_ratio"] is not None else "-"
        print(f"| {r['streams']} | {b['cpu_s']:.2f} | {x['cpu_s']:.2f} | {ratio} | {b['rss_kib']/1024:.1f} | {x['rss_kib']/1024:.1f} | {delay} | {b['segments']} / {x['segments']} | {b['push_failures']}+{x['push_failures']} |")


if __name__ == "__main__":
    main()
